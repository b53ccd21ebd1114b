"""Experiment planning: search spaces, objectives and the BoTorch planner.

``from athanor.planner import Planner`` imports torch and BoTorch on first use only, so
reading a campaign's search space stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Planner": "athanor.planner.planner",
    "PlannerSettings": "athanor.planner.planner",
    "Suggestion": "athanor.planner.planner",
    "Observation": "athanor.planner.planner",
    "PlannerError": "athanor.planner.encoding",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'athanor.planner' has no attribute {name!r}")
