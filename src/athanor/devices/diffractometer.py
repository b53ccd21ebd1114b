"""The X-ray diffractometer as an ophyd device: trigger measures the loaded sample."""

from __future__ import annotations

import threading
from contextlib import suppress
from typing import Any

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, Kind
from ophyd.status import Status

from athanor.clock import Clock, Deadline
from athanor.devices.signals import ValueSignal
from athanor.drivers.aeris import Aeris
from athanor.drivers.errors import InstrumentFault


class Diffractometer(Device):
    """A powder diffractometer that measures one sample per trigger.

    Set ``sample_id`` (and optionally ``slot`` and ``program``), then trigger: the device
    registers the sample at its slot, runs the scan program, reads the pattern file and,
    once the instrument reports ready again, signs the sample out of the slot (also when
    the scan or its file failed, so the slot is free for the next sample). Each step
    is safe to repeat after a lost reply (see :class:`athanor.drivers.aeris.Aeris`).
    ``two_theta`` and ``counts`` are arrays described with shape and units.

    Parameters
    ----------
    driver
        The instrument driver (:class:`athanor.drivers.aeris.Aeris`).
    clock
        Lab clock for the wait on the pattern file.
    scan_timeout
        Lab seconds to wait for a pattern after the scan starts.
    """

    sample_id = Cpt(ValueSignal, value="", kind=Kind.normal)
    two_theta = Cpt(ValueSignal, value=np.zeros(0), units="deg", kind=Kind.normal)
    counts = Cpt(ValueSignal, value=np.zeros(0), units="counts", kind=Kind.hinted)
    counting_time = Cpt(ValueSignal, value=0.0, units="s", kind=Kind.normal)
    program = Cpt(ValueSignal, value="10-100_8-minutes", kind=Kind.config)
    slot = Cpt(ValueSignal, value=1, kind=Kind.config)

    def __init__(
        self,
        driver: Aeris,
        clock: Clock,
        *,
        name: str,
        scan_timeout: float = 4 * 3600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.driver, self.clock, self.scan_timeout = driver, clock, scan_timeout

    def trigger(self) -> Status:
        status = Status(obj=self, timeout=None)
        sample = self.sample_id.get()
        if not sample:
            status.set_exception(ValueError(f"{self.name}: set sample_id before triggering"))
            return status
        threading.Thread(
            target=self._measure, args=(sample, status), name=f"{self.name}-scan", daemon=True
        ).start()
        return status

    def _measure(self, sample: str, status: Status) -> None:
        added = False
        try:
            program = self.program.get()
            self.driver.add(sample, int(self.slot.get()), program)
            added = True
            self.driver.measure(sample, program)
            pattern = self.driver.wait_for_pattern(sample, self.scan_timeout, self.clock)
            self.two_theta.put(pattern.two_theta)
            self.counts.put(pattern.counts)
            self.counting_time.put(float(pattern.counting_time or 0.0))
            self.driver.remove(sample)  # the slot is free for the next sample
            status.set_finished()
        except Exception as exc:
            if added:  # a failed scan must not keep the slot from the next sample
                with suppress(Exception):  # the failure is what gets reported
                    self.clear(sample, self.scan_timeout)
            status.set_exception(exc)

    def clear(self, sample_id: str, timeout: float, poll: float = 10.0) -> bool:
        """Take ``sample_id`` off the instrument's books, as after a run cut short; when
        it is refused while a scan runs, again once the scan has ended (up to ``timeout``
        lab seconds). Returns whether the instrument had the sample."""
        for attempt in range(2):
            try:
                self.driver.remove(sample_id)
                return True
            except InstrumentFault:  # not on the instrument, or being measured
                if attempt or self.driver.is_ready():
                    return False
            deadline = Deadline(self.clock, timeout)
            while not self.driver.is_ready() and not deadline.expired:
                self.clock.sleep(min(poll, max(deadline.remaining, 0.0)))
        return False
