"""What a protocol plan is given: the experiment's ids and the instruments it may use."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import bluesky.plan_stubs as bps
from bluesky.utils import Msg

from athanor.devices.diffractometer import Diffractometer
from athanor.devices.furnace import Furnace
from athanor.devices.spectrometer import Spectrometer
from athanor.devices.transfer import SampleTransfer
from athanor.protocols.contract import holder_id
from athanor.resources import ResourceGate, ResourcePool


@dataclass
class ExperimentContext:
    """One experiment's view of the lab.

    ``furnace`` is already leased to this experiment; shared instruments (the
    diffractometer, the spectrometer) are leased inside the plan with :meth:`lease` and
    given back with :meth:`release`, so other experiments can use them in between.
    """

    campaign: str
    experiment_id: int
    number: int
    sample_id: str
    furnace: Furnace
    diffractometer: Diffractometer
    spectrometer: Spectrometer
    transfer: SampleTransfer
    pool: ResourcePool
    extra_md: dict[str, Any] = field(default_factory=dict)
    _gates: dict[str, ResourceGate] = field(default_factory=dict)

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

    def lease(self, instrument: str) -> Generator[Msg, Any, Any]:
        """Wait (pausably) until ``instrument`` is free and take it."""
        gate = self._gates.setdefault(instrument, ResourceGate(self.pool, instrument))
        yield from bps.mv(gate, self.holder)

    def release(self, instrument: str) -> Generator[Msg, Any, Any]:
        """Give ``instrument`` back (safe to repeat)."""
        gate = self._gates.get(instrument)
        if gate is not None:
            yield from bps.mv(gate, None)
        else:
            self.pool.release(instrument, self.holder)
            yield from bps.null()
