"""What a protocol needs from the lab, declared with the protocol (AlabOS-style requests).

::

    @requires(furnace=Request("furnace"), xrd=Request("diffractometer"),
              uvvis=Request("spectrometer"), robot=Request("transfer", shared=True))
    def my_protocol(ctx, *, temperature_c, ...):
        ...
        xrd = yield from ctx.acquire("xrd")          # any free diffractometer, pausably
        yield from ctx.using("uvvis", measure)      # held for the scope of ``measure``

The first role is granted by the scheduler: an experiment starts only once an
instrument for it is free. The others are taken inside the plan. A lab that cannot
serve a request is refused, naming the protocol, the role and what the lab has, before
anything moves (:func:`check_requests`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from athanor.lab_config import LabConfig
from athanor.protocols.registry import PlanError

PlanT = TypeVar("PlanT", bound=Callable[..., Any])


@dataclass(frozen=True)
class Request:
    """One instrument a protocol needs: any free one of ``kind`` (and ``model``, if given).

    ``shared``: used by several experiments at once and never leased (the transfer
    robot serialises its own moves). ``priority``: when experiments wait for the same
    instrument, the higher is served first, then the one that waited longest.
    """

    kind: str
    model: str | None = None
    shared: bool = False
    priority: int = 0

    def describe(self) -> str:
        return f"a {self.kind}" + (f" of model {self.model}" if self.model else "")


#: What a protocol that declares nothing needs: the built-in experiment's instruments.
DEFAULT_REQUESTS: dict[str, Request] = {
    "furnace": Request("furnace"),
    "diffractometer": Request("diffractometer"),
    "spectrometer": Request("spectrometer"),
    "transfer": Request("transfer", shared=True),
}


def requires(**requests: Request) -> Callable[[PlanT], PlanT]:
    """Declare a protocol's instruments by role (the first one gates its start)."""
    if not requests:
        raise ValueError("requires() needs at least one role=Request(...)")
    first = next(iter(requests.values()))
    if first.shared:
        raise ValueError("the first request gates an experiment's start: it cannot be shared")

    def declare(plan: PlanT) -> PlanT:
        plan.requests = dict(requests)  # type: ignore[attr-defined]
        return plan

    return declare


def requests_of(plan: Callable[..., Any]) -> dict[str, Request]:
    """The requests a protocol declared (:data:`DEFAULT_REQUESTS` when none)."""
    return dict(getattr(plan, "requests", DEFAULT_REQUESTS))


def candidates(request: Request, lab: LabConfig) -> list[str]:
    """The instruments of ``lab`` that can serve ``request``, by name."""
    return [
        name
        for name, inst in lab.instruments.items()
        if inst.kind == request.kind and request.model in (None, inst.model)
    ]


def check_requests(plan: Callable[..., Any], lab: LabConfig) -> None:
    """Refuse (:class:`PlanError`) a protocol whose requests ``lab`` cannot serve."""
    for role, request in requests_of(plan).items():
        if not candidates(request, lab):
            has = Counter(inst.kind for inst in lab.instruments.values())
            what = ", ".join(f"{n} {k}{'s' if n > 1 else ''}" for k, n in sorted(has.items()))
            raise PlanError(
                f"protocol {getattr(plan, '__name__', plan)!r} requests {request.describe()} "
                f"(role {role!r}); lab {lab.name!r} has none (it has {what})"
            )
