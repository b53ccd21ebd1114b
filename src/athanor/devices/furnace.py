"""The furnace as an ophyd device: ``set`` runs a setpoint or a profile; ``stop`` makes it safe."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from ophyd import Component as Cpt
from ophyd import Device, Kind
from ophyd.status import Status

from athanor import profile
from athanor.clock import Clock, Deadline
from athanor.devices.signals import InstrumentSignal, ValueSignal
from athanor.drivers.errors import ConnectionLost, InstrumentFault, InstrumentTimeout
from athanor.drivers.eurotherm import Eurotherm, Reading
from athanor.lab_config import FurnaceLimits
from athanor.profile import Dwell, Ramp, Segment

T = TypeVar("T")
SETPOINT_ARRIVED = 0.5  # °C: the working setpoint has reached a segment's target
#: A controller's program that is over before this share of its planned time was reset
#: or changed by someone else.
PROGRAM_CUT_SHORT = 0.9
#: A move rides out lost contact (the controller runs on its own) until this many
#: readings in a row and ``lost_contact`` lab seconds have failed.
LOST_READINGS = 3


class MoveInterrupted(RuntimeError):
    """A furnace move that was stopped (or replaced by a newer one) before it finished."""


class Furnace(Device):
    """A furnace on a temperature controller.

    ``set(900.0)`` ramps to 900 °C at ``ramp_rate`` and finishes once the temperature is
    within ``tolerance``; ``set([Ramp(...), Dwell(...), Ramp(...)])`` runs the profile in
    the controller's own programmer (so it finishes safely even if this host dies) and
    finishes when the program has ended and the furnace has reached its last setpoint
    (or, when that is below ``handling_temperature``, has cooled below it); on a
    controller without programmer option the profile is stepped from this host. A
    program over well before its planned time, or a held setpoint changed, was reset or
    changed by someone else: the move fails with an
    :class:`~athanor.drivers.errors.InstrumentFault` instead of finishing. Requests
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
    lost_contact
        Lab seconds a move waits for a controller that stopped answering (and at least
        :data:`LOST_READINGS` readings) before it fails.
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
        lost_contact: float = 600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.driver, self.clock, self.poll, self.lost_contact = driver, clock, poll, lost_contact
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
        other = Furnace(
            self.driver, self.clock, name=self.name, limits=self.limits, poll=self.poll,
            lost_contact=self.lost_contact,
        )  # fmt: skip
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

    def safe_to_load(self, temperature: float | None) -> bool:
        """Whether a sample may go in or come out at ``temperature`` °C (None: unknown)."""
        return temperature is not None and temperature <= self.limits.handling_temperature

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
        program = not isinstance(target, int | float)
        try:
            start = self._locked(cancel, driver.pv)
            if not program:
                self._locked(cancel, lambda: self._hold_setpoint(float(target)))  # type: ignore[arg-type]
            elif driver.has_programmer():
                self._locked(cancel, lambda: driver.run_profile(segments, *self._limits()))
            else:
                self._step_profile(segments, cancel)
            final = profile.final_target(segments)
            self._wait(final, program, profile.duration(segments, start), cancel)
            if cancel.is_set():
                raise MoveInterrupted(f"{self.name}: stopped before reaching {final:g} °C")
            if program:  # the profile is over: nothing left to drive
                driver.safe()
                self._driving = False
            status.set_finished()
        except Exception as exc:
            status.set_exception(exc)

    def _limits(self) -> tuple[tuple[float, float], float]:
        return (self.min_temperature.get(), self.max_temperature.get()), self.max_ramp_rate.get()

    def _locked(self, cancel: threading.Event, action: Callable[[], T]) -> T:
        """Run ``action`` unless stopped; a ``stop()`` waits for it, then undoes it."""
        with self._writing:
            if cancel.is_set():
                raise MoveInterrupted(f"{self.name}: stopped before the move was sent")
            return action()

    def _hold_setpoint(self, target: float, rate: float | None = None) -> None:
        """Ramp to ``target`` at ``rate`` °C/min (default the ramp_rate signal; 0 steps)."""
        limits, max_rate = self._limits()
        self.driver.reset_program()
        self.driver.set_ramp_rate(self.ramp_rate.get() if rate is None else rate, max_rate)
        self.driver.set_setpoint(target, limits)
        self.driver.set_mode("auto")

    def _step_profile(self, segments: Sequence[Segment], cancel: threading.Event) -> None:
        """Run a profile from this host, for a controller without programmer option.

        Each ramp or step is one setpoint (and rate) write, its ramp left to the
        controller's SP.RAT; the next segment starts once the working setpoint has
        arrived, and a dwell is timed in lab time. A host that dies mid-profile leaves
        the furnace holding its last setpoint, which is why controllers with a
        programmer run the profile there instead.
        """
        temperature = self._locked(cancel, self.driver.working_setpoint)
        for seg in segments:
            if isinstance(seg, Dwell):
                dwell = Deadline(self.clock, seg.minutes * 60.0)
                done = partial(_dwell_over, dwell)
                self._poll_until(done, dwell.timeout + 2 * self.poll, "dwell overran", cancel)
                continue
            rate = seg.rate if isinstance(seg, Ramp) else 0.0
            self._locked(cancel, partial(self._hold_setpoint, seg.target, rate))
            timeout = 2 * profile.duration([seg], temperature) + 7200.0
            failure = f"setpoint did not reach {seg.target:g} °C"
            self._poll_until(partial(_setpoint_at, seg.target), timeout, failure, cancel)
            temperature = seg.target

    def _wait(self, final: float, program: bool, expected: float, cancel: threading.Event) -> None:
        """Until the furnace is at ``final`` (a profile's end: its program over, and at
        ``final`` or, cooling down to below the handling temperature, below that)."""
        tolerance = self.tolerance.get()
        handling = self.limits.handling_temperature
        started, in_controller = self.clock.now(), program and self.driver.has_programmer()

        def arrived(reading: Reading) -> bool:
            if not program:
                if abs(reading.target_setpoint - final) > tolerance:
                    raise self._interference(f"setpoint changed to {reading.target_setpoint:g} °C")
                return abs(reading.pv - final) <= tolerance
            if not self._profile_over(reading, final):
                return False
            ran = self.clock.now() - started
            if in_controller and ran < PROGRAM_CUT_SHORT * expected:
                raise self._interference(
                    f"program over after {ran / 60:.0f} of its {expected / 60:.0f} lab min"
                )
            return abs(reading.pv - final) <= tolerance or (
                final <= handling and reading.pv <= handling
            )

        # Heating and cooling lag the setpoint; allow twice the plan and two hours more.
        self._poll_until(arrived, 2 * expected + 7200.0, f"did not reach {final:g} °C", cancel)

    def _interference(self, what: str) -> InstrumentFault:
        return InstrumentFault(
            "reset or changed by someone else", instrument=self.name, detail=f"{what}"
        )

    def _profile_over(self, reading: Reading, final: float) -> bool:
        if self.driver.has_programmer():
            return self.driver.program_state() in ("complete", "reset")
        return _setpoint_at(final, reading)

    def _poll_until(
        self, done: Callable[[Reading], bool], timeout: float, failure: str, cancel: threading.Event
    ) -> None:
        """Read every ``poll`` lab seconds until ``done`` or a stop; ``failure`` on timeout.

        Readings that fail for lost contact are ridden out up to ``lost_contact``.
        """
        deadline = Deadline(self.clock, timeout)
        lost: list[float] = []  # lab times of the failed readings in a row
        while not cancel.is_set():
            try:
                reading = self.driver.read()  # raises on sensor break and over-range
                arrived = done(reading)  # may read the controller too (program state)
            except (InstrumentTimeout, ConnectionLost):
                lost.append(self.clock.now())
                if len(lost) >= LOST_READINGS and lost[-1] - lost[0] >= self.lost_contact:
                    raise
                self.clock.sleep(self.poll)
                continue
            lost.clear()
            if arrived:
                return
            if deadline.expired:
                raise InstrumentTimeout(
                    f"{failure} within {deadline.timeout:g} lab s (now {reading.pv:g} °C)",
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


def _setpoint_at(target: float, reading: Reading) -> bool:
    return abs(reading.working_setpoint - target) < SETPOINT_ARRIVED


def _dwell_over(dwell: Deadline, _reading: Reading) -> bool:
    return dwell.expired
