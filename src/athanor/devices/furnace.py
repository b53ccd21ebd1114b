"""The furnace as an ophyd device: ``set`` runs a setpoint or a profile; ``stop`` makes it safe."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from ophyd import Component as Cpt
from ophyd import Device, Kind
from ophyd.status import Status

from athanor.clock import Clock, Deadline
from athanor.config import FurnaceLimits
from athanor.devices.signals import InstrumentSignal, ValueSignal
from athanor.drivers import profile
from athanor.drivers.errors import InstrumentTimeout
from athanor.drivers.eurotherm import Eurotherm
from athanor.drivers.profile import Ramp, Segment


class MoveInterrupted(RuntimeError):
    """A furnace move that was stopped (or replaced by a newer one) before it finished."""


class Furnace(Device):
    """A furnace on a temperature controller.

    ``set(900.0)`` ramps to 900 °C at ``ramp_rate`` and finishes once the temperature is
    within ``tolerance``; ``set([Ramp(...), Dwell(...), Ramp(...)])`` runs the profile in
    the controller's own programmer (so it finishes safely even if this host dies) and
    finishes when the program has ended and the furnace has reached its last setpoint
    (or, when that is below ``handling_temperature``, has cooled below it). Requests
    outside the limits — the lab's and the instrument's, whichever are tighter — raise
    :class:`~athanor.drivers.errors.LimitError` before anything is sent. A profile that
    has run to its end leaves the controller in its safe state (standby, program reset,
    setpoint low). ``stop()`` — which the RunEngine calls at the end of every plan, on
    pause and on abort — does the same to a furnace this device is still driving (a move
    in progress, or a setpoint being held); it leaves alone a furnace it is done with, so
    a furnace shared by successive experiments can have one device per experiment.

    Parameters
    ----------
    driver
        The controller driver (:class:`athanor.drivers.eurotherm.Eurotherm`).
    clock
        Lab clock: polling and timeouts are in lab seconds.
    limits
        The lab's limits for this furnace.
    poll
        Lab seconds between readings while a move is in progress.
    """

    temperature = Cpt(InstrumentSignal, reader="_read_temperature", units="degC", kind=Kind.hinted)
    setpoint = Cpt(InstrumentSignal, reader="_read_setpoint", units="degC", kind=Kind.normal)
    output = Cpt(InstrumentSignal, reader="_read_output", units="%", kind=Kind.normal)
    ramp_rate = Cpt(ValueSignal, value=10.0, units="degC/min", kind=Kind.config)
    tolerance = Cpt(ValueSignal, value=5.0, units="degC", kind=Kind.config)
    min_temperature = Cpt(ValueSignal, value=0.0, units="degC", kind=Kind.config)
    max_temperature = Cpt(ValueSignal, value=0.0, units="degC", kind=Kind.config)
    max_ramp_rate = Cpt(ValueSignal, value=0.0, units="degC/min", kind=Kind.config)

    def __init__(
        self,
        driver: Eurotherm,
        clock: Clock,
        *,
        name: str,
        limits: FurnaceLimits | None = None,
        poll: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.driver, self.clock, self.poll = driver, clock, poll
        self.limits = limits or FurnaceLimits()
        sp_low, sp_high = driver.setpoint_limits()
        self.min_temperature.put(max(sp_low, self.limits.min_temperature))
        self.max_temperature.put(min(sp_high, self.limits.max_temperature))
        self.max_ramp_rate.put(self.limits.max_ramp_rate)
        self.ramp_rate.put(min(self.ramp_rate.get(), self.limits.max_ramp_rate))
        self._cancel = threading.Event()
        self._driving = False
        self._writing = threading.Lock()

    def twin(self) -> Furnace:
        """Another device on the same controller, with the same limits and settings."""
        other = Furnace(self.driver, self.clock, name=self.name, limits=self.limits, poll=self.poll)
        for signal in ("ramp_rate", "tolerance"):
            getattr(other, signal).put(getattr(self, signal).get())
        return other

    # readers used by the InstrumentSignals
    def _read_temperature(self) -> float:
        return self.driver.pv()

    def _read_setpoint(self) -> float:
        return self.driver.working_setpoint()

    def _read_output(self) -> float:
        return self.driver.output()

    @property
    def position(self) -> float:
        return self.driver.pv()

    def check(self, target: float | Sequence[Segment]) -> tuple[Segment, ...]:
        """The segments ``set(target)`` would run; LimitError if they break a limit."""
        segments = (
            (Ramp(float(target), self.ramp_rate.get()),)
            if isinstance(target, int | float)
            else tuple(target)
        )
        profile.check(
            segments,
            self.min_temperature.get(),
            self.max_temperature.get(),
            self.max_ramp_rate.get(),
            instrument=self.name,
        )
        return segments

    def set(self, target: float | Sequence[Segment]) -> Status:
        segments = self.check(target)
        self._cancel.set()  # a new request replaces a running one
        self._cancel = cancel = threading.Event()
        self._driving = True
        status = Status(obj=self)
        threading.Thread(
            target=self._run, args=(target, segments, status, cancel), daemon=True,
            name=f"{self.name}-set",
        ).start()  # fmt: skip
        return status

    def _run(
        self,
        target: float | Sequence[Segment],
        segments: tuple[Segment, ...],
        status: Status,
        cancel: threading.Event,
    ) -> None:
        driver = self.driver
        limits = (self.min_temperature.get(), self.max_temperature.get())
        max_rate = self.max_ramp_rate.get()
        try:
            with self._writing:  # a stop() waits for these writes, then undoes them
                if cancel.is_set():
                    raise MoveInterrupted(f"{self.name}: stopped before the move began")
                start = driver.pv()
                program = not isinstance(target, int | float)
                if program:
                    driver.run_profile(segments, limits, max_rate)
                else:
                    driver.reset_program()
                    driver.set_ramp_rate(self.ramp_rate.get(), max_rate)
                    driver.set_setpoint(float(target), limits)  # type: ignore[arg-type]
                    driver.set_mode("auto")
            final = profile.final_target(segments)
            expected = profile.duration(segments, start)
            self._wait(final, program, expected, cancel)
            if cancel.is_set():
                raise MoveInterrupted(f"{self.name}: stopped before reaching {final:g} °C")
            if program:  # the profile is over: nothing left to drive
                driver.safe()
                self._driving = False
            status.set_finished()
        except Exception as exc:
            status.set_exception(exc)

    def _wait(self, final: float, program: bool, expected: float, cancel: threading.Event) -> None:
        tolerance = self.tolerance.get()
        handling = self.limits.handling_temperature
        # Heating and cooling lag the setpoint; allow twice the plan and two hours more.
        deadline = Deadline(self.clock, 2 * expected + 7200.0)
        while not cancel.is_set():
            reading = self.driver.read()  # raises on sensor break and over-range
            arrived = abs(reading.pv - final) <= tolerance or (
                final <= handling and reading.pv <= handling
            )
            if arrived and (not program or self.driver.program_state() in ("complete", "reset")):
                return
            if deadline.expired:
                raise InstrumentTimeout(
                    f"did not reach {final:g} °C within {deadline.timeout:g} lab s "
                    f"(now {reading.pv:g} °C)",
                    instrument=self.name,
                )
            self.clock.sleep(self.poll)

    def stop(self, *, success: bool = False) -> None:
        """Abandon any move and put the controller this device drives in its safe state."""
        self._cancel.set()
        with self._writing:
            if self._driving:
                self.driver.safe()
                self._driving = False

    def safe(self) -> None:
        """Put the controller in its safe state, whoever drives it (operator abort)."""
        self._cancel.set()
        with self._writing:
            self._driving = False
            self.driver.safe()
