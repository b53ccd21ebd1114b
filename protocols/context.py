"""What a protocol plan is given: the experiment's ids and the instruments it requested."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import Msg

from athanor.protocols.contract import holder_id
from athanor.protocols.requests import Request
from athanor.resources import ResourceGate, ResourcePool


class RoleError(AttributeError):
    """A plan used a role it did not request, or one it does not hold."""


@dataclass
class ExperimentContext:
    """One experiment's view of the lab.

    The protocol's requests (:mod:`athanor.protocols.requests`) are its roles. The first
    role is already held when the plan starts, shared roles are always there; each held
    role is an attribute (``ctx.furnace``, ``ctx.robot``). The other roles are taken
    with :meth:`acquire` (any free instrument that fits, waited for pausably) and given
    back with :meth:`release`, or held for a scope with :meth:`using`; whatever is still
    held when the experiment ends is given back by the scheduler.
    """

    campaign: str
    experiment_id: int
    number: int
    sample_id: str
    pool: ResourcePool
    requests: Mapping[str, Request]
    #: role -> {instrument name: device} of the instruments that can serve it
    candidates: Mapping[str, Mapping[str, Any]]
    #: role -> device this experiment holds now (the first role and the shared ones)
    held: dict[str, Any] = field(default_factory=dict)
    extra_md: dict[str, Any] = field(default_factory=dict)
    _gates: dict[str, ResourceGate] = field(default_factory=dict)

    def __getattr__(self, role: str) -> Any:
        held = self.__dict__.get("held", {})
        if role in held:
            return held[role]
        if role in self.__dict__.get("requests", {}):
            raise RoleError(f"role {role!r} is not held: take it first with ctx.acquire({role!r})")
        raise AttributeError(role)

    @property
    def holder(self) -> str:
        return holder_id(self.campaign, self.number)

    def md(self, **more: Any) -> dict[str, Any]:
        """Start-document metadata that ties a run to this campaign, experiment and sample."""
        return {
            "campaign": self.campaign,
            "experiment_id": self.experiment_id,
            "experiment_number": self.number,
            "sample_id": self.sample_id,
            **self.extra_md,
            **more,
        }

    def _request(self, role: str) -> Request:
        if role not in self.requests:
            raise RoleError(
                f"role {role!r} was not requested; the protocol requests {', '.join(self.requests)}"
            )
        return self.requests[role]

    def acquire(self, role: str) -> Generator[Msg, Any, Any]:
        """Wait (pausably) until an instrument for ``role`` is free, take it; returns it."""
        request = self._request(role)
        if role in self.held:
            return self.held[role]
        want = tuple(self.candidates[role])
        gate = self._gates.setdefault(role, ResourceGate(self.pool, want, request.priority))
        yield from bps.mv(gate, self.holder)
        assert gate.granted is not None
        self.held[role] = self.candidates[role][gate.granted]
        return self.held[role]

    def release(self, role: str) -> Generator[Msg, Any, Any]:
        """Give ``role``'s instrument back (safe to repeat; shared roles stay)."""
        request = self._request(role)
        device = self.held.get(role)
        if request.shared or device is None:
            yield from bps.null()
            return
        del self.held[role]
        gate = self._gates.get(role)
        if gate is not None:
            yield from bps.mv(gate, None)
        else:  # the scheduler granted it before the plan started
            self.pool.release(device.name, self.holder)
            yield from bps.null()

    def using(
        self, role: str, plan: Callable[[Any], Generator[Msg, Any, Any]]
    ) -> Generator[Msg, Any, Any]:
        """Run ``plan(device)`` holding ``role``; give it back on every way out."""
        device = yield from self.acquire(role)
        return (yield from bpp.finalize_wrapper(plan(device), self.release(role)))
