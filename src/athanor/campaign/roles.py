"""A protocol's requests met by a lab: which instruments can serve each role."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from athanor.lab import Lab
from athanor.protocols.context import ExperimentContext
from athanor.protocols.requests import Request, candidates
from athanor.resources import ResourcePool


def lab_pool(lab: Lab, **kwargs: Any) -> ResourcePool:
    """A pool of every instrument of ``lab``, for the campaigns that share it."""
    kinds = {kind: list(devices) for kind, devices in lab.devices.items()}
    return ResourcePool(kinds, lab.clock, **kwargs)


class Roles:
    """The instruments of ``lab`` that can serve each of ``requests``' roles.

    The first role gates an experiment's start; :meth:`context` gives an experiment
    that holds ``granted`` for it (and every shared role) its view of the lab.
    """

    def __init__(self, requests: Mapping[str, Request], lab: Lab) -> None:
        self.requests = dict(requests)
        self.first = next(iter(self.requests))
        self.candidates: dict[str, dict[str, Any]] = {
            role: {name: lab.of_kind(r.kind)[name] for name in candidates(r, lab.config)}
            for role, r in self.requests.items()
        }

    @property
    def descriptions(self) -> dict[tuple[str, ...], str]:
        """Each role's instruments -> the request in words (``"a diffractometer"``)."""
        return {tuple(self.candidates[role]): r.describe() for role, r in self.requests.items()}

    @property
    def starters(self) -> tuple[str, ...]:
        """The instruments an experiment can start on (the first role's)."""
        return tuple(self.candidates[self.first])

    def pool(self, lab: Lab, **kwargs: Any) -> ResourcePool:
        """A pool of every requested kind's instruments."""
        kinds = {r.kind for r in self.requests.values()}
        return ResourcePool({kind: list(lab.of_kind(kind)) for kind in kinds}, lab.clock, **kwargs)

    def context(self, pool: ResourcePool, granted: str, **ids: Any) -> ExperimentContext:
        """The context of an experiment (``ids``: campaign, experiment_id, number,
        sample_id) that holds ``granted`` for the first role."""
        device = self.candidates[self.first][granted]
        held = {self.first: device.twin() if hasattr(device, "twin") else device}
        for role, request in self.requests.items():
            if request.shared:
                held[role] = next(iter(self.candidates[role].values()))
        return ExperimentContext(
            pool=pool, requests=self.requests, candidates=self.candidates, held=held, **ids
        )
