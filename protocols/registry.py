"""Finding a protocol plan by the name a campaign gives it.

A campaign names either a built-in protocol (``synthesize_and_characterize``) or any
function as ``package.module:function``. An experiment protocol takes an
:class:`~athanor.protocols.context.ExperimentContext` first and the experiment's
parameters as keyword arguments.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable
from typing import Any

BUILT_IN = {
    "synthesize_and_characterize": "athanor.protocols.synthesis:synthesize_and_characterize",
}


class PlanError(ValueError):
    """A protocol name that does not lead to a usable plan, or arguments it cannot take."""


def resolve(name: str) -> Callable[..., Any]:
    """The plan function a campaign's ``protocol`` names."""
    target = BUILT_IN.get(name, name)
    module_name, _, function = target.partition(":")
    if not function:
        raise PlanError(
            f"protocol {name!r} is neither built in ({', '.join(BUILT_IN)}) nor of the form "
            "'package.module:function'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PlanError(f"protocol {name!r}: cannot import {module_name!r} ({exc})") from None
    plan = getattr(module, function, None)
    if not callable(plan):
        raise PlanError(f"protocol {name!r}: {module_name!r} has no function {function!r}")
    if not _is_plan(plan):
        raise PlanError(
            f"protocol {name!r} is not a protocol plan: a plan is a generator function that "
            "takes the experiment's context first and its parameters as keywords "
            f"(built in: {', '.join(BUILT_IN)})"
        )
    return plan


def _is_plan(plan: Callable[..., Any]) -> bool:
    """A generator function (decorators that keep ``__wrapped__`` are seen through)
    with a positional first parameter for the context."""
    if not inspect.isgeneratorfunction(inspect.unwrap(plan)):
        return False
    try:
        params = list(inspect.signature(plan).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return bool(params) and params[0].kind in positional


def check_arguments(plan: Callable[..., Any], names: Iterable[str], what: str) -> None:
    """Refuse parameters the plan does not take, and required ones nobody gives."""
    signature = inspect.signature(plan)
    params = list(signature.parameters.values())[1:]  # the first is the context
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    accepted = {p.name for p in params}
    given = set(names)
    unknown = sorted(given - accepted) if not takes_any else []
    if unknown:
        raise PlanError(
            f"{what}: protocol {plan.__name__!r} takes no parameter(s) {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(accepted))}"
        )
    missing = sorted(
        p.name
        for p in params
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        and p.name not in given
    )
    if missing:
        raise PlanError(
            f"{what}: protocol {plan.__name__!r} needs {', '.join(missing)}, which neither the "
            "search space nor protocol_args give"
        )
