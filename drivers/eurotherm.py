"""Eurotherm 3200 / 2400 series temperature controllers over Modbus (RTU or TCP).

:class:`Eurotherm` is the whole driver: construct it from a connection and a unit,
then read (:meth:`~Eurotherm.pv`, :meth:`~Eurotherm.read`, :meth:`~Eurotherm.status`),
set (:meth:`~Eurotherm.set_setpoint`, :meth:`~Eurotherm.set_ramp_rate`,
:meth:`~Eurotherm.set_mode`), make safe (:meth:`~Eurotherm.safe`) and run a profile in
the controller's own programmer (:meth:`~Eurotherm.run_profile`)::

    with Eurotherm("/dev/ttyUSB0", unit=1, model="eurotherm3216") as tc:
        tc.set_ramp_rate(10)                     # °C/min, written once
        tc.set_setpoint(900, limits=(0, 1100))   # refused before the wire if outside
        print(tc.read())

Rules it keeps: the instrument's own SP.HI/SP.LO are read once and every setpoint is
checked against them (and against the caller's lab limits) before anything is written;
writes are skipped when the instrument already holds the value, so repeating a call
never wears the EEPROM; reads and absolute writes are retried a bounded number of times
on timeouts and dropped connections, nothing else is. Every public method is safe to
repeat after a lost reply: writes are absolute, program commands are checked first.

Units differ where the register map is silent. Registers outside the documented map
(input range 11/12, identity 107/122) may be absent (exception 02): the driver falls
back (the setpoint limits bound the sensor-break check; identity "unknown") and lists
what the unit lacks in :attr:`Eurotherm.lacks`. A unit without the programmer option
(probed once at register 23, or said by ``programmer=``) never has a programmer register
touched: :meth:`~Eurotherm.reset_program` has nothing to do, profiles raise
:class:`Unsupported`. The word order of the IEEE-754 area is learnt from the first
:meth:`~Eurotherm.read_float` and every value there is checked for plausibility.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from athanor.drivers.errors import (
    ConnectionLost,
    DriverError,
    InstrumentFault,
    InstrumentTimeout,
    LimitError,
    NotSafe,
    ProtocolError,
    Unsupported,
)
from athanor.drivers.modbus_link import AddressAbsent, ModbusLink, close_link, open_link
from athanor.profile import Dwell, Ramp, Segment

Model = Literal["eurotherm3216", "eurotherm2416"]
Mode = Literal["auto", "manual", "standby"]
WordOrder = Literal["auto", "high_first", "low_first"]

# Register addresses (zero-based PDU addresses), shared by the 3200 and 2400 series.
PV, TG_SP, MAN_OP, WRK_OP, WKG_SP = 1, 2, 3, 4, 5
RANGE_LO, RANGE_HI = 11, 12
PROGRAM_NUMBER, PROGRAM_STATE = 22, 23
OP_HI, OP_LO, SP_RAT = 30, 31, 35
STATUS, VERSION, SP_HI, SP_LO, INSTRUMENT_TYPE, INSTRUMENT_MODE = 75, 107, 111, 112, 122, 199
ACK_ALARMS, DECIMAL_PLACES, RAMP_UNITS = 274, 525, 531
FLOAT_BASE = 0x8000
TRIPLETS_3216, DWELL_UNITS_3216, END_TYPE_3216 = 1280, 321, 328
PROGRAM_BASE_2416 = 8192

MODES: dict[str, int] = {"auto": 0, "manual": 1, "standby": 2}
FAULT_BITS = {5: "sensor break", 10: "PV over-range", 6: "loop break"}
ALARM_BITS = {0: "alarm 1", 1: "alarm 2", 2: "alarm 3", 3: "alarm 4", 12: "new alarm"}
PROGRAM_STATES: dict[str, dict[int, str]] = {
    "eurotherm2416": {1: "reset", 2: "run", 4: "hold", 8: "holdback", 16: "complete"},
    "eurotherm3216": {0: "reset", 1: "run", 2: "hold", 3: "complete"},
}
# Seconds per unit of register 531 (ramp units); the two series number them differently.
RAMP_UNIT_S: dict[str, dict[int, float]] = {
    "eurotherm3216": {0: 60.0, 1: 3600.0, 2: 1.0},
    "eurotherm2416": {0: 1.0, 1: 60.0, 2: 3600.0},
}
MAX_SEGMENTS = {"eurotherm3216": 8, "eurotherm2416": 15}


@dataclass(frozen=True)
class Status:
    """The decoded status word (register 75)."""

    word: int
    faults: tuple[str, ...]
    alarms: tuple[str, ...]
    manual: bool
    program_end: bool

    @classmethod
    def decode(cls, word: int) -> Status:
        return cls(
            word=word,
            faults=tuple(name for bit, name in FAULT_BITS.items() if word >> bit & 1),
            alarms=tuple(name for bit, name in ALARM_BITS.items() if word >> bit & 1),
            manual=bool(word >> 4 & 1),
            program_end=bool(word >> 9 & 1),
        )


@dataclass(frozen=True)
class Reading:
    """One consistent look at the loop: °C and % output."""

    pv: float
    target_setpoint: float
    working_setpoint: float
    output: float
    status: Status


@dataclass(frozen=True)
class _Config:
    scale: int
    range_lo: float
    range_hi: float
    sp_lo: float
    sp_hi: float
    ramp_unit_s: float


class Eurotherm:
    """A Eurotherm 3216 or 2416 controller on a Modbus line.

    Parameters
    ----------
    connection
        ``/dev/ttyUSB0`` (or any pyserial URL) for Modbus RTU, ``socket://HOST:PORT`` for
        RTU frames over TCP, ``modbus-tcp://HOST:PORT`` for Modbus TCP through a gateway.
        Controllers on the same connection share one port.
    unit
        Modbus address of the controller (1-254; the unit id behind a gateway).
    model
        ``"eurotherm3216"`` or ``"eurotherm2416"`` (they differ in programmer and ramp units).
    io_timeout
        Wall seconds to wait for each reply.
    baudrate, parity
        Serial line settings (RTU on a serial port only).
    retries
        Extra attempts for reads and absolute writes after a timeout or dropped connection.
    name
        Instrument name used in error messages.
    programmer
        Whether the unit has the programmer option; ``None`` probes register 23 once.
    float_word_order
        Word order of the IEEE-754 area; ``"auto"`` learns it from the first float read.

    Attributes
    ----------
    lacks
        What this unit was found to lack, with the fallback used, one line each.
    """

    def __init__(
        self,
        connection: str,
        *,
        unit: int = 1,
        model: Model = "eurotherm3216",
        io_timeout: float = 1.0,
        baudrate: int = 9600,
        parity: str = "N",
        retries: int = 2,
        name: str = "",
        programmer: bool | None = None,
        float_word_order: WordOrder = "auto",
    ) -> None:
        if model not in PROGRAM_STATES:
            raise ValueError(f"model must be one of {sorted(PROGRAM_STATES)}, got {model!r}")
        if not 1 <= unit <= 254:
            raise ValueError(f"unit must be a Modbus address in 1-254, got {unit!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries!r}")
        if float_word_order not in ("auto", "high_first", "low_first"):
            raise ValueError(
                "float_word_order must be 'auto', 'high_first' or 'low_first', "
                f"got {float_word_order!r}"
            )
        self.unit, self.model, self.retries = unit, model, retries
        self.name = name or f"{model}@{connection}#{unit}"
        self._link: ModbusLink | None = open_link(
            connection, io_timeout=io_timeout, baudrate=baudrate, parity=parity
        )
        self._config: _Config | None = None
        self._programmer = programmer
        self._word_order = float_word_order
        self.lacks: list[str] = []
        if programmer is False:
            self._lack(
                "programmer option (none, says the lab config): profiles stepped by the host"
            )

    # ------------------------------------------------------------------ wire

    def _with_retries(self, call):
        for attempt in range(self.retries + 1):
            try:
                return call()
            except (InstrumentTimeout, ConnectionLost) as exc:
                if attempt == self.retries:
                    exc.instrument = exc.instrument or self.name
                    raise
            except DriverError as exc:
                exc.instrument = exc.instrument or self.name
                raise
        raise AssertionError("unreachable")

    @property
    def link(self) -> ModbusLink:
        if self._link is None:
            raise ConnectionLost("the driver is closed", instrument=self.name)
        return self._link

    def read_registers(self, address: int, count: int = 1) -> list[int]:
        """Raw holding registers (unsigned 16-bit), retried on timeouts."""
        link, unit = self.link, self.unit
        return self._with_retries(lambda: link.read(unit, address, count))

    def write_registers(self, address: int, values: Sequence[int]) -> None:
        """Write raw registers (absolute values only; retried on timeouts)."""
        link, unit, values = self.link, self.unit, [v & 0xFFFF for v in values]
        self._with_retries(lambda: link.write(unit, address, values))

    def _read_optional(self, address: int, count: int, lack: str) -> list[int] | None:
        """Registers the unit may not have: None (and ``lack`` noted) on exception 02."""
        try:
            return self.read_registers(address, count)
        except AddressAbsent:
            self._lack(lack)
            return None

    def _lack(self, what: str) -> None:
        if what not in self.lacks:
            self.lacks.append(what)

    def read_float(self, address: int) -> float:
        """The full-resolution value (°C) of temperature parameter ``address`` (PV, setpoints).

        Read from the IEEE-754 area (0x8000 + 2*addr) and checked against the 16-bit
        register, so a float read with its words swapped (5e6 °C) is refused with
        :class:`ProtocolError`; with ``float_word_order="auto"`` the first read learns
        the order.
        """
        words = self.read_registers(FLOAT_BASE + 2 * address, 2)
        expected = self._temperature(address)
        tolerance = 1.0 + 0.01 * abs(expected)  # a live value moves between the two reads
        orders: tuple[WordOrder, ...] = (
            ("high_first", "low_first") if self._word_order == "auto" else (self._word_order,)
        )
        for order in orders:
            value = _float(words, order)
            if abs(value - expected) <= tolerance:  # NaN compares False
                if self._word_order == "auto" and order == "low_first":
                    self._lack(
                        "float area sends its low word first (learnt from the 16-bit registers)"
                    )
                self._word_order = order
                return value
        found = " or ".join(f"{_float(words, o):g} ({o.replace('_', ' ')})" for o in orders)
        raise ProtocolError(
            f"float register {FLOAT_BASE + 2 * address:#06x} reads {found}, but parameter "
            f"{address} reads {expected:g} °C: not a plausible reading",
            instrument=self.name,
        )

    def _write_if_changed(self, address: int, values: Sequence[int]) -> bool:
        """Write only what differs from the instrument; returns whether anything was written.

        A write whose reply was lost is read back before it is sent again, so a retry
        never costs the EEPROM a second write.
        """
        link, unit, wanted = self.link, self.unit, [v & 0xFFFF for v in values]
        sent = False

        def attempt() -> bool:
            nonlocal sent
            if link.read(unit, address, len(wanted)) == wanted:
                return sent
            sent = True
            link.write(unit, address, wanted)
            return True

        return self._with_retries(attempt)

    # ------------------------------------------------------------------ configuration

    def config(self, refresh: bool = False) -> _Config:
        """Decimal places, input range, SP limits and ramp units, read once and cached.

        A unit without the input-range registers bounds the sensor-break check with its
        setpoint limits instead: a PV outside them is checked against the status word.
        """
        if self._config is None or refresh:
            (dp,) = self.read_registers(DECIMAL_PLACES)
            scale = 10 ** _signed(dp)
            sp_hi, sp_lo = (_signed(r) / scale for r in self.read_registers(SP_HI, 2))
            input_range = self._read_optional(
                RANGE_LO, 2, "input range (registers 11, 12): sensor break checked beyond SP limits"
            )
            lo, hi = (_signed(r) / scale for r in input_range) if input_range else (sp_lo, sp_hi)
            (units,) = self.read_registers(RAMP_UNITS)
            try:
                unit_s = RAMP_UNIT_S[self.model][units]
            except KeyError:
                raise InstrumentFault(
                    "unexpected ramp units", detail=f"register 531 = {units}", instrument=self.name
                ) from None
            self._config = _Config(scale, lo, hi, sp_lo, sp_hi, unit_s)
        return self._config

    def setpoint_limits(self) -> tuple[float, float]:
        """The instrument's own (SP.LO, SP.HI) in °C."""
        c = self.config()
        return c.sp_lo, c.sp_hi

    # ------------------------------------------------------------------ reads

    def _temperature(self, address: int) -> float:
        return _signed(self.read_registers(address)[0]) / self.config().scale

    def pv(self) -> float:
        """Process value, °C (one transaction).

        A reading pinned at the end of the input range is checked against the status word
        and raises :class:`InstrumentFault` (``"sensor break"``, ``"PV over-range"``).
        """
        c = self.config()
        value = _signed(self.read_registers(PV)[0]) / c.scale
        if value >= c.range_hi or value <= c.range_lo:
            self._raise_faults(self.status(), f"PV reads {value:g}")
        return value

    def target_setpoint(self) -> float:
        return self._temperature(TG_SP)

    def working_setpoint(self) -> float:
        """The setpoint the loop follows now (ramping toward the target)."""
        return self._temperature(WKG_SP)

    def output(self) -> float:
        """Working output, %."""
        return _signed(self.read_registers(WRK_OP)[0]) / 10

    def ramp_rate(self) -> float:
        """Setpoint rate limit in °C per minute (0 = off)."""
        c = self.config()
        return _signed(self.read_registers(SP_RAT)[0]) / c.scale * 60.0 / c.ramp_unit_s

    def output_limits(self) -> tuple[float, float]:
        """(OP.LO, OP.HI) in %."""
        hi, lo = self.read_registers(OP_HI, 2)
        return _signed(lo) / 10, _signed(hi) / 10

    def status(self) -> Status:
        return Status.decode(self.read_registers(STATUS)[0])

    def mode(self) -> Mode:
        (raw,) = self.read_registers(INSTRUMENT_MODE)
        return {0: "auto", 1: "manual", 2: "standby"}.get(raw, "standby")  # type: ignore[return-value]

    def read(self) -> Reading:
        """PV, target and working setpoint, output and status (two transactions).

        Raises :class:`InstrumentFault` on sensor break or PV over-range.
        """
        scale = self.config().scale
        pv, tsp, _man, wop, wsp = (_signed(r) for r in self.read_registers(PV, 5))
        status = self.status()
        self._raise_faults(status, f"PV reads {pv / scale:g}")
        return Reading(pv / scale, tsp / scale, wsp / scale, wop / 10, status)

    def _raise_faults(self, status: Status, detail: str) -> None:
        if status.faults:
            raise InstrumentFault(
                status.faults[0], detail=f"{detail}, status word {status.word:#06x}",
                instrument=self.name,
            )  # fmt: skip

    def identify(self) -> dict[str, int | str]:
        """Model, unit and the identity registers (122 type, 107 version; "unknown" if absent)."""
        kind = self._read_optional(INSTRUMENT_TYPE, 1, "instrument type (register 122)")
        version = self._read_optional(VERSION, 1, "firmware version (register 107)")
        return {
            "model": self.model,
            "unit": self.unit,
            "type": kind[0] if kind else "unknown",
            "version": version[0] if version else "unknown",
        }

    # ------------------------------------------------------------------ writes

    def _check_setpoint(self, value: float, limits: tuple[float, float] | None) -> int:
        c = self.config()
        low, high = c.sp_lo, c.sp_hi
        if limits is not None:
            low, high = max(low, limits[0]), min(high, limits[1])
        if not (math.isfinite(value) and low <= value <= high):
            raise LimitError("setpoint", value, low, high, "°C", instrument=self.name)
        return round(value * c.scale)

    def _check_rate(self, rate: float, max_rate: float | None, unit_s: float | None = None) -> int:
        """°C/min → register value in ``unit_s`` seconds per unit (default: register 531)."""
        c = self.config()
        unit_s = c.ramp_unit_s if unit_s is None else unit_s
        high = max_rate if max_rate is not None else math.inf
        if not (math.isfinite(rate) and 0 <= rate <= high):
            raise LimitError("ramp rate", rate, 0, high, "°C/min", instrument=self.name)
        raw = round(rate / 60.0 * unit_s * c.scale)
        if rate > 0 and raw == 0:
            smallest = 60.0 / (unit_s * c.scale)
            raise LimitError("ramp rate", rate, smallest, high, "°C/min", instrument=self.name)
        return raw

    def set_setpoint(self, value: float, limits: tuple[float, float] | None = None) -> bool:
        """Write the target setpoint (°C) unless it is already there; returns whether written.

        ``limits`` are the lab's (low, high); the tighter of them and the instrument's
        SP.LO/SP.HI applies, and a value outside raises :class:`LimitError` before any write.
        """
        return self._write_if_changed(TG_SP, [self._check_setpoint(value, limits)])

    def set_ramp_rate(self, rate: float, max_rate: float | None = None) -> bool:
        """Set the setpoint rate limit, °C/min (0 = step); refused above ``max_rate``.

        If the instrument's ramp units cannot hold ``rate`` within 1 %, they are switched
        to per minute first (one write, kept for later calls).
        """
        raw, c = self._check_rate(rate, max_rate), self.config()
        if abs(raw * 60.0 / (c.ramp_unit_s * c.scale) - rate) > 0.01 * rate:
            per_minute = next(k for k, v in RAMP_UNIT_S[self.model].items() if v == 60.0)
            self._write_if_changed(RAMP_UNITS, [per_minute])
            self.config(refresh=True)
            raw = self._check_rate(rate, max_rate)
        return self._write_if_changed(SP_RAT, [raw])

    def set_mode(self, mode: Mode) -> bool:
        """``"auto"`` (control), ``"manual"`` or ``"standby"`` (heater off)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
        return self._write_if_changed(INSTRUMENT_MODE, [MODES[mode]])

    def acknowledge_alarms(self) -> None:
        self.write_registers(ACK_ALARMS, [1])

    def safe(self, setpoint: float | None = None) -> None:
        """Put the controller in a safe state: heater off, program reset, setpoint low.

        Every step is attempted even if an earlier one fails; a unit without programmer
        has no program to reset. Raises :class:`NotSafe`, naming each step that failed
        and each that was done, if any step failed. ``setpoint`` defaults to SP.LO.
        """
        steps = {
            "standby": lambda: self.set_mode("standby"),
            "program reset": self.reset_program,
            "setpoint low": lambda: self.set_setpoint(
                self.config().sp_lo if setpoint is None else setpoint
            ),
        }
        failed: dict[str, DriverError] = {}
        for what, step in steps.items():
            try:
                step()
            except DriverError as exc:
                failed[what] = exc
        if failed:
            done = [what for what in steps if what not in failed]
            raise NotSafe(failed, done, instrument=self.name)

    # ------------------------------------------------------------------ programmer

    def has_programmer(self) -> bool:
        """Whether the unit has the programmer option (probed once, at register 23)."""
        if self._programmer is None:
            self._programmer = (
                self._read_optional(
                    PROGRAM_STATE,
                    1,
                    "programmer option (register 23 absent): profiles stepped by the host",
                )
                is not None
            )
        return self._programmer

    def _need_programmer(self) -> None:
        if not self.has_programmer():
            raise Unsupported(
                f"this {self.model} has no programmer option (register 23 absent or the lab "
                "config says so); a profile cannot run in the controller",
                instrument=self.name,
            )

    def program_state(self) -> str:
        """``"reset"``, ``"run"``, ``"hold"``, ``"complete"`` (2416 also ``"holdback"``)."""
        self._need_programmer()
        (raw,) = self.read_registers(PROGRAM_STATE)
        return PROGRAM_STATES[self.model].get(raw, f"unknown ({raw})")

    def _state_code(self, state: str) -> int:
        return next(k for k, v in PROGRAM_STATES[self.model].items() if v == state)

    def load_profile(
        self,
        segments: Sequence[Segment],
        limits: tuple[float, float] | None = None,
        max_rate: float | None = None,
    ) -> None:
        """Write a ramp/dwell/step profile into the controller's programmer.

        Every target and rate is checked (instrument and lab limits) before anything is
        written; registers that already hold the wanted values are not rewritten.
        """
        writes = self._profile_writes(segments, limits, max_rate)
        self._need_programmer()
        for address, values in writes:
            self._write_if_changed(address, values)

    def _profile_writes(
        self, segments: Sequence[Segment], limits, max_rate
    ) -> list[tuple[int, list[int]]]:
        """The register blocks a profile needs, every value checked; nothing is sent."""
        if not segments:
            raise ValueError("a profile needs at least one segment")
        if len(segments) > MAX_SEGMENTS[self.model]:
            raise ValueError(
                f"{self.model} holds at most {MAX_SEGMENTS[self.model]} segments, "
                f"got {len(segments)}"
            )
        for seg in segments:
            if isinstance(seg, Dwell) and not (math.isfinite(seg.minutes) and seg.minutes >= 0):
                raise ValueError(f"dwell minutes must be a number >= 0, got {seg.minutes!r}")
            if isinstance(seg, Ramp) and not seg.rate > 0:
                raise LimitError("ramp rate", seg.rate, 0, max_rate or math.inf, "°C/min")
        if self.model == "eurotherm2416":
            return self._writes_2416(segments, limits, max_rate)
        return self._writes_3216(segments, limits, max_rate)

    def _writes_2416(self, segments, limits, max_rate) -> list[tuple[int, list[int]]]:
        scale = self.config().scale
        rows: list[list[int]] = [[0, 0, 1, 1, 1, 0, 0, 0]]  # header: ramp/dwell units minutes
        for seg in segments:
            if isinstance(seg, Ramp):
                tgt = self._check_setpoint(seg.target, limits)
                rows.append([1, tgt, self._check_rate(seg.rate, max_rate, 60.0), 0, 0, 0, 0, 0])
            elif isinstance(seg, Dwell):
                rows.append([3, 0, round(seg.minutes * scale), 0, 0, 0, 0, 0])
            else:
                rows.append([4, self._check_setpoint(seg.target, limits), 0, 0, 0, 0, 0, 0])
        rows.append([0, 0, 0, 0, 0, 0, 0, 0])  # end segment: dwell at the last setpoint
        base = PROGRAM_BASE_2416 + 136  # program 1
        return [(PROGRAM_NUMBER, [1])] + [(base + 8 * n, row) for n, row in enumerate(rows)]

    def _writes_3216(self, segments, limits, max_rate) -> list[tuple[int, list[int]]]:
        triplets: list[list[int]] = []  # (dwell minutes, setpoint, ramp)
        for seg in segments:
            if isinstance(seg, Dwell):
                if not triplets:
                    raise ValueError("a 3216 profile must start with a Ramp or a Step")
                if triplets[-1][0]:  # that segment already dwells: hold in a new one
                    triplets.append([0, triplets[-1][1], 0])
                triplets[-1][0] = round(seg.minutes)
            elif isinstance(seg, Ramp):
                sp = self._check_setpoint(seg.target, limits)
                triplets.append([0, sp, self._check_rate(seg.rate, max_rate)])
            else:
                triplets.append([0, self._check_setpoint(seg.target, limits), 0])
        if len(triplets) > MAX_SEGMENTS[self.model]:
            raise ValueError(f"the profile needs {len(triplets)} 3216 segments; at most 8 fit")
        flat = [v for t in triplets for v in t]
        flat += [0] * (3 * MAX_SEGMENTS[self.model] - len(flat))
        # dwell units minutes; end type: dwell at the last setpoint
        return [(DWELL_UNITS_3216, [1]), (END_TYPE_3216, [1]), (TRIPLETS_3216, flat)]

    def run_program(self) -> None:
        """Start (or resume) the loaded program; the controller is put in auto first."""
        self.set_mode("auto")
        if self.program_state() != "run":
            self.write_registers(PROGRAM_STATE, [self._state_code("run")])

    def hold_program(self) -> None:
        self._need_programmer()
        self.write_registers(PROGRAM_STATE, [self._state_code("hold")])

    def reset_program(self) -> None:
        """Stop the programmer (the loop returns to the target setpoint); none: nothing to do."""
        if self.has_programmer() and self.program_state() != "reset":
            self.write_registers(PROGRAM_STATE, [self._state_code("reset")])

    def run_profile(
        self,
        segments: Sequence[Segment],
        limits: tuple[float, float] | None = None,
        max_rate: float | None = None,
    ) -> None:
        """Check, reset a running program, load the profile and run it."""
        writes = self._profile_writes(segments, limits, max_rate)
        self._need_programmer()
        self.reset_program()
        for address, values in writes:
            self._write_if_changed(address, values)
        self.run_program()

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        if self._link is not None:
            close_link(self._link)
            self._link = None

    def __enter__(self) -> Eurotherm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Eurotherm({self.name!r})"


def _signed(raw: int) -> int:
    return raw - 0x10000 if raw & 0x8000 else raw


def _float(words: Sequence[int], order: str) -> float:
    high, low = words if order == "high_first" else reversed(words)
    return struct.unpack(">f", struct.pack(">HH", high, low))[0]
