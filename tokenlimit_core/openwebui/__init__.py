"""Open WebUI adapters: the Function filter (`Filter`) and the Pipelines filter (`Pipeline`).

`python -m tokenlimit_core.bundle` writes each, with the core inlined, into
one self-contained file under `filters/` for admins to upload.
"""
from .function import Filter
from .pipeline import Pipeline

__all__ = ["Filter", "Pipeline"]
