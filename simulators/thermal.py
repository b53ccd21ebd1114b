"""A box furnace and its temperature controller, integrated in lab time.

:class:`FurnaceModel` is the physics and the control loop behind one emulated Eurotherm:
a heating element (heater power up to a maximum, thermal mass, coupling to the chamber),
a chamber holding the sample (losses to ambient by conduction and radiation), and a
thermocouple that lags the chamber, so a PID controller overshoots on a step. The
controller works like a Eurotherm: PID in engineering units (proportional band in °C,
Ti and Td in seconds), a working setpoint that ramps toward the target at a rate limit,
output limits, auto/manual/standby modes, a sensor-break output, and a programmer that
runs ramp/dwell/step profiles on its own.

The model is integrated lazily: every access first steps it, in fixed lab-time steps,
up to ``clock.now()``, so it costs nothing while nobody looks and is exactly repeatable
under a :class:`~athanor.clock.ManualClock`. It records the chamber (sample) temperature
every ``history_interval`` lab seconds; :meth:`FurnaceModel.history` serves the
:class:`~athanor.simulators.world.TemperatureHistory` protocol the materials ground
truth integrates along.
"""

from __future__ import annotations

import bisect
import math
import threading
from dataclasses import dataclass
from typing import Literal

import numpy as np

from athanor.clock import Clock

STEFAN_BOLTZMANN = 5.670374419e-8  # W m⁻² K⁻⁴
KELVIN = 273.15
PV_FILTER_S = 1.6  # the controller's input filter (Eurotherm's default FiLt)

Mode = Literal["auto", "manual", "standby"]
ProgramState = Literal["reset", "run", "hold", "complete"]


@dataclass(frozen=True)
class ThermalParams:
    """Physical parameters of one furnace (SI units, temperatures in °C)."""

    heater_power_w: float = 4000.0
    chamber_heat_capacity_j_per_k: float = 4200.0
    element_heat_capacity_j_per_k: float = 800.0
    element_coupling_w_per_k: float = 80.0
    loss_w_per_k: float = 0.8
    radiation_area_m2: float = 0.01
    emissivity: float = 0.8
    thermocouple_lag_s: float = 20.0
    pv_noise_c: float = 0.2
    ambient_c: float = 22.0
    element_limit_c: float = 1200.0


@dataclass(frozen=True)
class Segment:
    """One programmer segment, in controller terms.

    ``kind`` is ``"ramp"`` (toward ``target`` at ``rate`` °C/s), ``"ramp_time"`` (reach
    ``target`` in ``duration`` s), ``"dwell"`` (hold for ``duration`` s) or ``"step"``
    (jump to ``target``).
    """

    kind: Literal["ramp", "ramp_time", "dwell", "step"]
    target: float = 0.0
    rate: float = 0.0
    duration: float = 0.0


class FurnaceModel:
    """One furnace under PID control, stepped lazily to ``clock.now()``.

    Parameters
    ----------
    clock
        The lab clock; the model's time is the clock's lab time.
    params
        Physical parameters.
    seed
        Seed of the thermocouple noise (a numpy ``Generator``).
    step
        Integration step in lab seconds (must be well below the element and
        thermocouple time constants; checked by the emulator's settings).
    history_interval
        Lab seconds between two recorded sample temperatures.

    Controller settings are plain attributes the emulator sets: ``target_sp`` (°C),
    ``ramp_rate`` (°C/s, 0 = no rate limit), ``pb`` (°C), ``ti``/``td`` (s, 0 = off),
    ``op_hi``/``op_lo``/``manual_op``/``sbreak_op`` (%), ``mode``, ``sensor_break``.
    """

    def __init__(
        self,
        clock: Clock,
        params: ThermalParams | None = None,
        *,
        seed: int = 0,
        step: float = 1.0,
        history_interval: float = 10.0,
    ) -> None:
        self.clock = clock
        self.p = params or ThermalParams()
        self.step = float(step)
        self.history_interval = float(history_interval)
        self._rng = np.random.default_rng(seed)
        self._noise = (self._rng.standard_normal(4096) * self.p.pv_noise_c).tolist()
        self._noise_i = 0
        self._lock = threading.RLock()
        amb = self.p.ambient_c
        self.t = clock.now()
        self.chamber = self.element = self.thermocouple = amb
        self.pv = amb
        self.output = 0.0
        self.working_sp = amb
        # controller settings
        self.target_sp = amb
        self.ramp_rate = 0.0
        self.pb, self.ti, self.td = 20.0, 120.0, 20.0
        self.op_hi, self.op_lo = 100.0, 0.0
        self.manual_op = 0.0
        self.sbreak_op = 0.0
        self.mode: Mode = "auto"
        self.sensor_break = False
        self._integral = 0.0
        self._filtered, self._dpv = amb, 0.0
        # programmer
        self.program: list[Segment] = []
        self.program_end: Literal["dwell", "reset"] = "dwell"
        self.program_state: ProgramState = "reset"
        self.segment = 0
        self._seg_elapsed = 0.0
        self._seg_rate = 0.0
        # history
        self._times: list[float] = [self.t]
        self._temps: list[float] = [self.chamber]
        self._next_record = self.t + self.history_interval
        rad = self.p.emissivity * STEFAN_BOLTZMANN * self.p.radiation_area_m2
        self._rad = rad
        self._amb4 = (amb + KELVIN) ** 4

    # ------------------------------------------------------------------ public state

    def update(self) -> None:
        """Integrate up to the clock's lab time (whole steps)."""
        with self._lock:
            n = int((self.clock.now() - self.t) / self.step)
            if n > 0:
                self._run(n)

    def sample_temperature(self) -> float:
        """The true chamber (sample) temperature now, °C."""
        self.update()
        return self.chamber

    def set_mode(self, mode: Mode) -> None:
        """Auto, manual or standby (heater off); leaving standby servos the setpoint to PV."""
        with self._lock:
            self.update()
            if self.mode == "standby" and mode != "standby":
                self.working_sp = self.pv
                self._integral = 0.0
            self.mode = mode

    def run_program(self, segments: list[Segment], end: Literal["dwell", "reset"]) -> None:
        """Start a profile from the current PV (servo to PV), as the programmer does."""
        with self._lock:
            self.update()
            self.program, self.program_end = list(segments), end
            self.segment, self._seg_elapsed = 0, 0.0
            self.working_sp = self.pv
            self.program_state = "run"
            self._enter_segment()

    def hold_program(self) -> None:
        with self._lock:
            self.update()
            if self.program_state == "run":
                self.program_state = "hold"

    def resume_program(self) -> None:
        with self._lock:
            self.update()
            if self.program_state == "hold":
                self.program_state = "run"

    def reset_program(self) -> None:
        with self._lock:
            self.update()
            self.program_state = "reset"

    def program_time_left(self) -> tuple[float, float]:
        """Lab seconds left in the current segment and in the whole program."""
        with self._lock:
            if self.program_state not in ("run", "hold"):
                return 0.0, 0.0
            left, wsp = [], self.working_sp
            for i in range(self.segment, len(self.program)):
                seg = self.program[i]
                if seg.kind == "dwell":
                    done = self._seg_elapsed if i == self.segment else 0.0
                    left.append(max(0.0, seg.duration - done))
                elif seg.kind in ("ramp", "ramp_time"):
                    rate = self._seg_rate if i == self.segment else seg.rate
                    if seg.kind == "ramp_time" and i != self.segment:
                        left.append(seg.duration)
                    else:
                        left.append(abs(seg.target - wsp) / rate if rate > 0 else 0.0)
                    wsp = seg.target
                else:
                    left.append(0.0)
                    wsp = seg.target
            return (left[0] if left else 0.0), sum(left)

    def history(self, start: float, end: float) -> tuple[list[float], list[float]]:
        """Lab times (s) and chamber temperatures (°C) recorded between ``start`` and ``end``.

        The first and last points are interpolated at ``start`` and ``end`` (clipped to
        the recorded span, which ends at the current time), so integrating along the
        trace covers exactly the asked window.
        """
        if end < start:
            raise ValueError(f"history: end ({end}) is before start ({start})")
        with self._lock:
            self.update()
            times = [*self._times, self.t]
            temps = [*self._temps, self.chamber]
        start, end = max(start, times[0]), min(end, times[-1])
        if end < start:
            return [], []
        i = bisect.bisect_right(times, start)
        j = bisect.bisect_left(times, end)
        inner_t, inner_y = times[i:j], temps[i:j]
        return (
            [start, *inner_t, end],
            [_interp(times, temps, start), *inner_y, _interp(times, temps, end)],
        )

    # ------------------------------------------------------------------ integration

    def _enter_segment(self) -> None:
        while self.segment < len(self.program):
            seg = self.program[self.segment]
            self._seg_elapsed = 0.0
            if seg.kind == "step":
                self.working_sp = seg.target
                self.segment += 1
                continue
            if seg.kind == "ramp_time":
                self._seg_rate = abs(seg.target - self.working_sp) / max(seg.duration, 1e-9)
            else:
                self._seg_rate = seg.rate
            return
        self.program_state = "complete" if self.program_end == "dwell" else "reset"

    def _program_step(self, dt: float) -> None:
        seg = self.program[self.segment]
        if seg.kind == "dwell":
            self._seg_elapsed += dt
            if self._seg_elapsed < seg.duration:
                return
        else:
            gap = seg.target - self.working_sp
            move = self._seg_rate * dt if self._seg_rate > 0 else abs(gap)
            if abs(gap) > move:
                self.working_sp += math.copysign(move, gap)
                return
            self.working_sp = seg.target
        self.segment += 1
        self._enter_segment()

    def _run(self, n: int) -> None:
        p, dt = self.p, self.step
        c_ch, c_el = p.chamber_heat_capacity_j_per_k, p.element_heat_capacity_j_per_k
        k_el, loss, rad, amb, amb4 = (
            p.element_coupling_w_per_k,
            p.loss_w_per_k,
            self._rad,
            (p.ambient_c),
            self._amb4,
        )
        tc_gain = 1.0 - math.exp(-dt / p.thermocouple_lag_s) if p.thermocouple_lag_s else 1.0
        chamber, element, thermo = self.chamber, self.element, self.thermocouple
        integral, filtered, dpv, wsp = self._integral, self._filtered, self._dpv, self.working_sp
        filter_gain = 1.0 - math.exp(-dt / PV_FILTER_S)
        d_gain = 1.0 - math.exp(-dt / max(self.td / 8.0, dt))
        noise, ni = self._noise, self._noise_i
        times, temps = self._times, self._temps
        t, next_record = self.t, self._next_record
        pv = output = 0.0
        for _ in range(n):
            if ni == len(noise):
                noise, ni = (self._rng.standard_normal(4096) * p.pv_noise_c).tolist(), 0
            pv = thermo + noise[ni]
            ni += 1
            last_pv, filtered = filtered, filtered + (pv - filtered) * filter_gain
            dpv += ((filtered - last_pv) / dt - dpv) * d_gain
            # working setpoint
            if self.program_state == "run":
                self.working_sp = wsp
                self._program_step(dt)
                wsp = self.working_sp
            elif self.program_state == "reset":
                gap = self.target_sp - wsp
                move = self.ramp_rate * dt
                wsp = (
                    self.target_sp
                    if move <= 0 or abs(gap) <= move
                    else wsp + math.copysign(move, gap)
                )
            # controller output, %
            if self.sensor_break:
                output = self.sbreak_op
            elif self.mode == "standby":
                output, integral = 0.0, 0.0
            elif self.mode == "manual":
                output = min(max(self.manual_op, self.op_lo), self.op_hi)
            else:
                # Eurotherm-style PID: input filter, derivative on PV, integral frozen
                # while the output is saturated in the direction of the error.
                gain = 100.0 / self.pb
                err = wsp - filtered
                prop = gain * err
                deriv = -gain * self.td * dpv
                output = prop + integral + deriv
                if self.ti > 0:
                    saturated = (output >= self.op_hi and err > 0) or (
                        output <= self.op_lo and err < 0
                    )
                    if not saturated:
                        integral += gain * err * dt / self.ti
                        integral = min(max(integral, -100.0), 100.0)
                else:
                    integral = 0.0
                output = min(max(output, self.op_lo), self.op_hi)
            # heat balance (explicit Euler; the step is checked against time constants)
            power = p.heater_power_w * max(output, 0.0) / 100.0
            if element >= p.element_limit_c:
                power = 0.0
            flow = k_el * (element - chamber)
            lost = loss * (chamber - amb) + rad * ((chamber + KELVIN) ** 4 - amb4)
            element += (power - flow) * dt / c_el
            chamber += (flow - lost) * dt / c_ch
            thermo += (chamber - thermo) * tc_gain
            t += dt
            if t >= next_record:
                times.append(t)
                temps.append(chamber)
                next_record += self.history_interval
        self.chamber, self.element, self.thermocouple = chamber, element, thermo
        self._integral, self._filtered, self._dpv, self.working_sp = integral, filtered, dpv, wsp
        self._noise, self._noise_i = noise, ni
        self.t, self._next_record = t, next_record
        self.pv, self.output = pv, output


def _interp(times: list[float], values: list[float], x: float) -> float:
    i = bisect.bisect_right(times, x)
    if i == 0:
        return values[0]
    if i == len(times):
        return values[-1]
    t0, t1 = times[i - 1], times[i]
    w = (x - t0) / (t1 - t0) if t1 > t0 else 0.0
    return values[i - 1] + w * (values[i] - values[i - 1])
