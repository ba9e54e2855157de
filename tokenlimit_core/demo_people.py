"""The people and texts of the demo: names (some Chinese), groups, daily rhythm, message pools."""
from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass

# Share of requests per local hour on a weekday (working-hour peaks, a quieter evening).
HOURLY = [1, 1, 1, 1, 1, 2, 4, 10, 22, 30, 32, 28, 14, 20, 30, 32, 30, 24, 14, 12, 14, 12, 7, 3]
WEEKDAY = [1.0, 1.05, 1.0, 0.95, 0.85, 0.3, 0.2]  # Monday .. Sunday
UNSETTLED_SHARE = 0.01  # requests whose outlet never ran (closed tab, crashed worker)
NO_USAGE_SHARE = 0.15  # web-UI replies streamed without usage: settled by estimating the reply
MODELS = ["gpt-4o", "gpt-4o-mini", "llama3:8b", "qwen3:14b", "study-helper"]  # study-helper: on gpt-4o-mini
GROUPS = [("students",), ("teachers",), ("research",), ()]
GROUP_WEIGHTS = [55, 20, 10, 15]
FIRST_NAMES = ["Alice", "Ben", "Carla", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "James", "Kofi",
               "Lena", "Marco", "Nina", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Victor"]
LAST_NAMES = ["Smith", "Garcia", "Müller", "Okafor", "Rossi", "Novak", "Silva", "Kim", "Brown", "Dubois"]
CHINESE_NAMES = [("王芳", "wang.fang"), ("李伟", "li.wei"), ("张敏", "zhang.min"), ("刘洋", "liu.yang"),
                 ("陈静", "chen.jing"), ("杨磊", "yang.lei"), ("赵丽", "zhao.li"), ("黄强", "huang.qiang"),
                 ("周杰", "zhou.jie"), ("吴婷", "wu.ting"), ("徐明", "xu.ming"), ("孙悦", "sun.yue")]
EN_SENTENCES = [
    "Can you summarise the attached meeting notes in five bullet points?",
    "The quarterly report shows revenue growth of twelve percent, mostly from the new region.",
    "Please rewrite this paragraph so that a first-year student can follow it.",
    "What are the main differences between supervised and unsupervised learning?",
    "Here is the error message I get when the build runs on the CI server.",
    "Explain why the second approach uses less memory than the first one.",
    "Draft a polite email asking the supplier to confirm the delivery date.",
    "List the assumptions behind this model and how we could test each of them.",
    "The experiment was repeated three times and the variance stayed below two percent.",
    "Translate the following abstract into plain English without losing the key results.",
]
ZH_SENTENCES = [
    "请帮我把这段会议记录总结成五个要点。", "这个季度的销售额比去年同期增长了百分之十二。",
    "请用简单的语言解释一下什么是机器学习。", "下面是我在运行程序时遇到的错误信息，请帮我分析原因。",
    "请把这篇摘要翻译成英文，保留主要结论。", "实验重复了三次，结果的方差保持在百分之二以下。",
    "帮我写一封邮件，请供应商确认交货日期。", "这两种方法在内存使用上有什么区别？",
]
CODE_LINES = [
    "def load(path):\n    with open(path) as fh:\n        return json.load(fh)\n",
    "for row in rows:\n    totals[row['user']] += row['tokens']\n",
    "SELECT user_id, SUM(tokens) FROM usage GROUP BY user_id ORDER BY 2 DESC;\n",
    "const res = await fetch(url, { method: 'POST', body: JSON.stringify(payload) });\n",
]


@dataclass(frozen=True)
class DemoUser:
    """A simulated Open WebUI user and their habits."""

    id: str
    name: str
    email: str
    role: str
    groups: tuple[str, ...]
    activity: float  # mean requests per weekday
    model_weights: tuple[float, ...]
    api_share: float
    tool_overhead: int  # tokens of tool definitions Open WebUI adds after the inlet


def make_users(rng: random.Random, count: int) -> list[DemoUser]:
    """`count` users: mostly role user, a few admins and pending, English and Chinese names."""
    people = []
    for i in range(count):
        if rng.random() < 0.3:
            name, handle = rng.choice(CHINESE_NAMES)
        else:
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            name, handle = f"{first} {last}", f"{first}.{last}".lower().replace("ü", "ue")
        role = "admin" if i % 25 == 1 else "pending" if i % 30 == 4 else "user"
        activity = 30.0 if i == 0 else 0.3 if role == "pending" else min(rng.lognormvariate(math.log(6), 0.9), 80)
        weights = tuple(rng.random() ** 2 for _ in MODELS)
        people.append(DemoUser(
            id=str(uuid.UUID(int=rng.getrandbits(128), version=4)), name=name, email=f"{handle}{i}@example.edu",
            role=role, groups=rng.choices(GROUPS, weights=GROUP_WEIGHTS)[0], activity=activity,
            model_weights=weights, api_share=rng.uniform(0.5, 1) if rng.random() < 0.2 else rng.uniform(0, 0.1),
            tool_overhead=round(rng.uniform(1500, 4000)) if rng.random() < 0.4 else 0))
    return people


def message_pool(rng: random.Random, size: int = 240) -> list[str]:
    """Message texts of realistic lengths in English, Chinese, code and mixes (features are cached by text)."""
    pool = []
    for _ in range(size):
        kind = rng.choices(["en", "zh", "code", "mixed"], weights=[50, 25, 15, 10])[0]
        bank = {"en": EN_SENTENCES, "zh": ZH_SENTENCES, "code": CODE_LINES,
                "mixed": EN_SENTENCES + ZH_SENTENCES + CODE_LINES}[kind]
        length = max(1, min(int(rng.lognormvariate(math.log(4), 1.0)), 120))
        pool.append(" ".join(rng.choice(bank) for _ in range(length)))
    return pool


def reply_pool(rng: random.Random, size: int = 60) -> list[str]:
    """Assistant reply texts, longer than prompts on average."""
    return [" ".join(rng.choice(EN_SENTENCES + ZH_SENTENCES) for _ in range(rng.randint(3, 40)))
            for _ in range(size)]
