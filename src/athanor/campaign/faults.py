"""Instrument faults: which instrument failed an experiment, and when the campaign pauses.

An experiment failed by an instrument (a driver's error naming it, other than a limit
refused before the wire) is not its recipe's failure: the ledger runs its parameters
again (:meth:`~athanor.campaign.ledger.Ledger.retry`) and the planner learns nothing
from it. The instrument is out of the pool until a probe of it over the lab's own
connection passes (what ``athanor check`` reads, with no alarm); the campaign pauses
after ``faults.pause_after`` consecutive failures of one instrument, or when a role has
no instrument left in service.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial

from athanor.campaign.errors import explain
from athanor.clock import Clock
from athanor.drivers.errors import DriverError, LimitError
from athanor.kinds import InstrumentReport, kind_of
from athanor.lab import Lab
from athanor.resources import ResourcePool

#: Lab seconds between probes of an instrument out of service (the first is at once).
PROBE_EVERY = 600.0
#: Wall seconds between probes at least, however fast the lab clock runs.
PROBE_EVERY_WALL = 1.0


def blamed(error: BaseException | None) -> DriverError | None:
    """The driver error naming an instrument behind ``error``; None when the recipe or
    the plan itself failed, or a limit was refused before the wire."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, DriverError) and error.instrument:
            return None if isinstance(error, LimitError) else error
        error = error.__cause__ or error.__context__
    return None


def probe(lab: Lab, name: str) -> str:
    """Why instrument ``name`` fails its probe ("" when it passes)."""
    config = lab.config.instruments[name]
    report = InstrumentReport(name, config.kind, config.model, config.connection)
    try:
        kind_of(config).probe(lab.drivers[name], report)
    except Exception as exc:
        return explain(exc)
    alarms = report.readings.get("alarms", "none")
    return "" if alarms == "none" else f"alarms: {alarms}"


class InstrumentHealth:
    """Each instrument's run of failed experiments, and the probes of those out of service.

    Parameters
    ----------
    lab, pool
        The instruments, and the pool they are taken out of and put back in.
    roles
        The instruments each role of the protocol may take, by the role's description
        (``"a diffractometer"``): a role with none in service pauses the campaign.
    pause_after
        Consecutive failures of one instrument that pause the campaign.
    pause
        Called with why the campaign must pause.
    notify
        Called with notes for the operator.
    """

    def __init__(
        self,
        lab: Lab,
        pool: ResourcePool,
        roles: Mapping[str, Iterable[str]],
        pause_after: int,
        pause: Callable[[str], None],
        notify: Callable[[str], None],
    ) -> None:
        self.lab, self.pool, self.clock = lab, pool, lab.clock
        self.roles = {role: list(names) for role, names in roles.items()}
        self.pause_after, self.pause, self.notify = pause_after, pause, notify
        self.failures: dict[str, int] = {}  # instrument: consecutive failed experiments
        self._failed_probe: dict[str, str] = {}  # instrument: why its last probe failed
        self._probes = _Probes(self.clock)

    def failed(self, instrument: str, why: str) -> None:
        """An experiment failed by ``instrument``: take it out until a probe passes."""
        count = self.failures[instrument] = self.failures.get(instrument, 0) + 1
        self.pool.take_out(instrument, f"failed an experiment ({why}); to be probed")
        self._failed_probe.pop(instrument, None)
        self._probes.due_now(instrument)
        if count >= self.pause_after:
            self.pause(f"{instrument} failed {count} experiments in a row; last: {why}")

    def succeeded(self, instruments: Iterable[str]) -> None:
        """An experiment that used ``instruments`` was analysed: their runs of failures end."""
        for name in instruments:
            self.failures.pop(name, None)

    def restore(self) -> None:
        """The operator resumed after a fault pause: every instrument back in service."""
        for name in self.pool.out_of_service():
            self.pool.put_back(name)
        self.failures.clear()
        self._failed_probe.clear()

    def check(self) -> None:
        """Probe what is out of service and due, in the background; put back what passed;
        pause when a role has no instrument left that could serve it."""
        for name, why in self._probes.results().items():
            if not why:
                self.notify(f"{name} passed its probe; back in service")
                self._failed_probe.pop(name, None)
                self.pool.put_back(name)
            elif self._failed_probe.get(name) != why:
                self._failed_probe[name] = why
                self.pool.take_out(name, f"probe failed: {why}")
                self.notify(f"{name} stays out of service: its probe failed: {why}")
        for name in self.pool.out_of_service():
            self._probes.start_if_due(name, partial(probe, self.lab, name))
        for role, names in self.roles.items():
            if names and all(name in self._failed_probe for name in names):
                self.pause(
                    f"no instrument in service for {role}: "
                    + "; ".join(f"{name}: {self._failed_probe[name]}" for name in names)
                )


class _Probes:
    """Probes running in threads of their own, at most one per instrument, each
    instrument at most every :data:`PROBE_EVERY` lab seconds."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self._next: dict[str, tuple[float, float]] = {}  # name: (lab time, wall time)
        self._done: dict[str, str] = {}

    def due_now(self, name: str) -> None:
        with self._lock:
            self._next.pop(name, None)

    def start_if_due(self, name: str, run: Callable[[], str]) -> None:
        lab_due, wall_due = self._next.get(name, (-float("inf"), -float("inf")))
        with self._lock:
            if name in self._running or self.clock.now() < lab_due or time.monotonic() < wall_due:
                return
            self._running.add(name)
            self._next[name] = (self.clock.now() + PROBE_EVERY, time.monotonic() + PROBE_EVERY_WALL)

        def probing() -> None:
            why = run()
            with self._lock:
                self._running.discard(name)
                self._done[name] = why

        threading.Thread(target=probing, name=f"probe-{name}", daemon=True).start()

    def results(self) -> dict[str, str]:
        """Probes finished since the last call: instrument -> why it failed ("" passed)."""
        with self._lock:
            done, self._done = self._done, {}
            return done
