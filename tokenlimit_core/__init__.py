"""tokenlimit_core: token quotas for Open WebUI — policy, estimation, engine and stores.

    from tokenlimit_core import Engine, Policy, UserInfo, open_store
    engine = Engine(open_store("memory://"), seed=Policy(roles={"user": 10000}))
    decision = engine.check(UserInfo("alice", role="user"), "gpt-4o", body, request_id="r1")
    engine.settle("r1", outlet_body)
"""
from .engine import BudgetStatus, Decision, Engine, QuotaExceeded, cost_of
from .estimate import Estimate, Estimator, Features
from .periods import WindowSpec, window_bounds, window_label
from .policy import Budget, Calibration, Policy, Price, SharedBudget, Tier, UserOverride, resolve
from .settings import Settings, SettingsError
from .store import (SCHEMA_VERSION, CounterKey, DailyUsage, LedgerEvent, Store, StoreError, StoreUnavailable,
                    UserInfo, default_store_url, open_store, redact_url)
from .usage import Usage, from_response

__version__ = "0.1.0"

__all__ = [
    "Budget", "BudgetStatus", "Calibration", "CounterKey", "DailyUsage", "Decision", "Engine", "Estimate",
    "Estimator", "Features", "LedgerEvent", "Policy", "Price", "QuotaExceeded", "SCHEMA_VERSION", "Settings",
    "SettingsError", "SharedBudget", "Store", "StoreError", "StoreUnavailable", "Tier", "Usage", "UserInfo",
    "UserOverride", "WindowSpec", "cost_of", "default_store_url", "from_response", "open_store", "redact_url",
    "resolve", "window_bounds", "window_label",
]
