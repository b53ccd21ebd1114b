"""A Eurotherm 3216 / 2416 temperature controller on the real Modbus wire.

Entry points
------------
- :class:`EurothermEmulator` ``(name, model, unit, connection, clock, settings)``: one
  furnace controller (register map, thermal model, fault switches). ``await start()``
  opens its own line and returns the URL a client uses; :meth:`~EurothermEmulator.history`
  is the furnace's sample temperature trace for the materials ground truth.
- :class:`ModbusLine` ``(connection, emulators)``: several controllers sharing one line
  (RS-485 bus over a pty or ``socket://``) or one Modbus TCP gateway, each at its unit.
- :class:`EurothermSimSettings`: the ``sim:`` block of a furnace in a lab YAML
  (thermal parameters, PID, limits, seed and :class:`EurothermFaults`).

Connections: ``modbus-tcp://HOST:PORT`` (Modbus TCP, as through an RTU-to-TCP gateway;
a unit nobody answers for gets exception 0x0B), ``socket://HOST:PORT`` (Modbus RTU frames
over TCP, the pyserial URL a client opens) and ``pty://`` (Modbus RTU on a pseudo-terminal;
the client opens the returned ``/dev/pts/N``). Port 0 picks a free port; the returned
URL has the real one. On RTU lines a unit that is not there stays silent.

The registers are served by pymodbus' simulator datastore (``SimDevice``/``SimData`` with
an ``action`` that computes live values and checks writes); framing and the line itself
are run here so that faults (silence, late or garbled replies, dropped connections) can
be injected at the wire. Facts follow ``shared/reference/instruments.md``; conventions
this emulator had to choose are listed in :data:`CONVENTIONS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator
from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerBase, FramerRTU, FramerSocket
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simcore import SimCore

from athanor.clock import Clock, ScaledClock
from athanor.schema import StrictModel
from athanor.simulators.hosting import PtyLink
from athanor.simulators.thermal import FurnaceModel, Segment, ThermalParams

Model = Literal["eurotherm3216", "eurotherm2416"]

CONVENTIONS = """\
- Thermocouple type K, input range -200.0 to 1372.0 °C (registers 11, 12). An open
  thermocouple drives the input upscale: on sensor break, and on PV over-range, the PV
  register reads the range high, with status bits 5 / 10 set (and register 258 on break).
- Percent registers (3, 4, 30, 31, 34) have one decimal; Ti/Td (8, 9) are whole seconds;
  temperatures, PB and rates follow the decimal places of register 525.
- Ramp units (531): 3216 0 = per minute, 1 = per hour, 2 = per second; 2416 0 = per second,
  1 = per minute, 2 = per hour (the 2400 programmer's own units).
- The float area (0x8000 + 2*addr) mirrors every parameter below 1280; time parameters
  there are 32-bit milliseconds, as on the instrument.
- 2416 programs 1-4, 16 segments; segment fields: +0 type, +1 target, +2 rate or duration,
  +3 end type (0 dwell, 1 reset); program header (segment 0): +2 ramp units, +3 dwell units.
  Durations use the decimal places of register 525, like temperatures.
- 3216P: eight (dwell, setpoint, ramp) triplets from 1280; dwell units at 321 (0 hour,
  1 minute), end type at 328 (1 dwell, 3 reset). A segment ramps (0 = step) then dwells;
  the program ends after the last segment that is not all zeros.
- Register 122 reads the model number (3216 or 2416), 107 a firmware version.
- Firmware variants (``firmware:``): without the programmer option its registers answer
  exception 02; a minimal map answers 02 for 11, 12, 107, 122 and 260; the float area
  may send its low word first.
"""

RANGE_LO, RANGE_HI = -200.0, 1372.0
FLOAT_BASE = 0x8000
EXC_GATEWAY_NO_RESPONSE = 0x0B


# --------------------------------------------------------------------------- settings


class EurothermFaults(StrictModel):
    """Faults an emulated controller shows; switch them at runtime by assignment.

    ``late_reply_s`` and the delays are wall seconds (wire timing, not lab time).
    """

    no_reply: bool = Field(False, description="answer nothing (RTU silence, TCP no reply)")
    late_reply_s: float = Field(0.0, ge=0, le=60, description="delay every reply, wall s")
    garbage: bool = Field(False, description="replies arrive corrupted (bad CRC / MBAP)")
    exception_code: int | None = Field(
        None, ge=1, le=11, description="answer every request with this Modbus exception"
    )
    sensor_break: bool = Field(False, description="thermocouple open circuit")
    over_range: bool = Field(False, description="PV above the input range")
    drop_connection: bool = Field(False, description="close the TCP connection on a request")
    lose_replies: int = Field(
        0, ge=0, le=1_000_000,
        description="carry out the next N requests, then send no reply to them (a lost reply)",
    )  # fmt: skip


class EurothermFirmware(StrictModel):
    """How this unit differs from another where the documented facts are silent.

    Real controllers vary with model code and options; each switch plays one variant.
    """

    programmer: bool = Field(
        True,
        description="the programmer option (3216P, 2416 with programs); without it the "
        "programmer registers (22, 23, 36, 56, 58, 321, 328, 1280+, 8192+) answer exception 02",
    )
    minimal_map: bool = Field(
        False,
        description="only the registers of the documented map: input range (11, 12), identity "
        "(107, 122) and the new-alarm flag (260) answer exception 02",
    )
    float_word_order: Literal["high_first", "low_first"] = Field(
        "high_first", description="word order of the IEEE-754 area at 0x8000 + 2*addr"
    )


class EurothermSimSettings(StrictModel):
    """Emulator settings: a furnace's ``sim:`` block in a lab YAML.

    Temperatures in °C, powers in W, times in lab seconds unless named otherwise.
    """

    heater_power_w: float = Field(4000.0, gt=0, le=200_000)
    chamber_heat_capacity_j_per_k: float = Field(4200.0, gt=0)
    element_heat_capacity_j_per_k: float = Field(800.0, gt=0)
    element_coupling_w_per_k: float = Field(80.0, gt=0)
    loss_w_per_k: float = Field(0.8, ge=0)
    radiation_area_m2: float = Field(0.01, ge=0, le=10)
    emissivity: float = Field(0.8, ge=0, le=1)
    thermocouple_lag_s: float = Field(20.0, ge=0, le=3600)
    pv_noise_c: float = Field(0.2, ge=0, le=5)
    ambient_c: float = Field(22.0, ge=-40, le=60)
    element_limit_c: float = Field(1200.0, gt=100, le=1800)
    sp_high_c: float = Field(1200.0, description="instrument SP.HI")
    sp_low_c: float = Field(0.0, description="instrument SP.LO")
    decimal_places: int = Field(1, ge=0, le=1)
    pb_c: float = Field(20.0, gt=0, le=999)
    ti_s: float = Field(120.0, ge=0, le=9999)
    td_s: float = Field(20.0, ge=0, le=9999)
    step_s: float = Field(1.0, gt=0, le=60, description="integration step, lab s")
    history_interval_s: float = Field(10.0, gt=0, le=3600)
    seed: int = 0
    firmware: EurothermFirmware = Field(default_factory=EurothermFirmware)
    faults: EurothermFaults = Field(default_factory=EurothermFaults)

    @model_validator(mode="after")
    def _physical(self) -> EurothermSimSettings:
        if not RANGE_LO <= self.sp_low_c < self.sp_high_c <= RANGE_HI:
            raise ValueError(
                f"sp_low_c ({self.sp_low_c}) must be below sp_high_c ({self.sp_high_c}), "
                f"both within the input range {RANGE_LO:g}..{RANGE_HI:g} °C"
            )
        if self.sp_high_c > self.element_limit_c:
            raise ValueError(
                f"sp_high_c ({self.sp_high_c}) is above element_limit_c "
                f"({self.element_limit_c}); the furnace cannot reach it"
            )
        taus = {
            "element (heat capacity / coupling)": self.element_heat_capacity_j_per_k
            / self.element_coupling_w_per_k
        }
        if self.thermocouple_lag_s:
            taus["thermocouple_lag_s"] = self.thermocouple_lag_s
        name, tau = min(taus.items(), key=lambda kv: kv[1])
        if self.step_s > tau / 2:
            raise ValueError(
                f"step_s ({self.step_s}) must be at most half the shortest time constant, "
                f"{name} = {tau:g} s; lower step_s"
            )
        return self

    def thermal(self) -> ThermalParams:
        return ThermalParams(
            heater_power_w=self.heater_power_w,
            chamber_heat_capacity_j_per_k=self.chamber_heat_capacity_j_per_k,
            element_heat_capacity_j_per_k=self.element_heat_capacity_j_per_k,
            element_coupling_w_per_k=self.element_coupling_w_per_k,
            loss_w_per_k=self.loss_w_per_k,
            radiation_area_m2=self.radiation_area_m2,
            emissivity=self.emissivity,
            thermocouple_lag_s=self.thermocouple_lag_s,
            pv_noise_c=self.pv_noise_c,
            ambient_c=self.ambient_c,
            element_limit_c=self.element_limit_c,
        )


# --------------------------------------------------------------------------- register map

# Scaling kinds: T temperature / temperature-like (decimal places of 525), P percent
# (one decimal), S whole seconds, M minutes (one decimal), I plain integer.
Kind = Literal["T", "P", "S", "M", "I"]


@dataclass(frozen=True)
class Param:
    name: str
    kind: Kind
    writable: bool = True
    eeprom: bool = True


COMMON: dict[int, Param] = {
    1: Param("PV", "T", writable=False),
    2: Param("TG.SP", "T"),
    3: Param("MAN.OP", "P"),
    4: Param("WRK.OP", "P", writable=False),
    5: Param("WKG.SP", "T", writable=False),
    6: Param("PB", "T"),
    8: Param("Ti", "S"),
    9: Param("Td", "S"),
    11: Param("RANGE.LO", "T", writable=False),
    12: Param("RANGE.HI", "T", writable=False),
    13: Param("AL1", "T"),
    14: Param("AL2", "T"),
    15: Param("SP.SEL", "I"),
    23: Param("PROG.STATE", "I", eeprom=False),
    24: Param("SP1", "T"),
    25: Param("SP2", "T"),
    26: Param("COMMS.SP", "T", eeprom=False),
    30: Param("OP.HI", "P"),
    31: Param("OP.LO", "P"),
    35: Param("SP.RAT", "T"),
    39: Param("ERROR", "T", writable=False),
    75: Param("STATUS", "I", writable=False),
    107: Param("VERSION", "I", writable=False),
    111: Param("SP.HI", "T"),
    112: Param("SP.LO", "T"),
    122: Param("INST.TYPE", "I", writable=False),
    199: Param("MODE", "I", eeprom=False),
    258: Param("SBREAK", "I", writable=False),
    260: Param("NEW.ALARM", "I", writable=False),
    274: Param("ACK.ALARMS", "I", eeprom=False),
    276: Param("REMOTE", "I"),
    525: Param("DEC.P", "I", writable=False),
    531: Param("RAMP.U", "I"),
}
ONLY_2416: dict[int, Param] = {
    22: Param("PROG.NUM", "I"),
    34: Param("SB.OP", "P"),
    36: Param("SEG.LEFT", "M", writable=False),
    56: Param("SEGMENT", "I", writable=False),
    58: Param("PROG.LEFT", "M", writable=False),
}
ONLY_3216: dict[int, Param] = {
    321: Param("DWELL.U", "I"),
    328: Param("END.TYPE", "I"),
    **{
        1280 + 3 * i + j: Param(f"{name}{i + 1}", kind)
        for i in range(8)
        for j, (name, kind) in enumerate((("DWELL", "I"), ("PSP", "T"), ("RAMP", "T")))
    },
}
PROGRAMMER_2416 = (22, 23, 36, 56, 58)
PROGRAMMER_3216 = (23, 321, 328)
OUTSIDE_DOCUMENTED_MAP = (11, 12, 107, 122, 260)
PROGRAMS_2416 = range(1, 5)
SEGMENTS_2416 = range(0, 17)
PROGRAM_BASE = 8192

# Status word bits (register 75).
B_AL1, B_AL2, B_MANUAL, B_SBREAK, B_LOOPBREAK, B_PROG_END, B_OVER_RANGE, B_NEW_ALARM = (
    0, 1, 4, 5, 6, 9, 10, 12)  # fmt: skip

_STATE_CODES = {
    "eurotherm2416": {"reset": 1, "run": 2, "hold": 4, "complete": 16},
    "eurotherm3216": {"reset": 0, "run": 1, "hold": 2, "complete": 3},
}
_RAMP_UNIT_S = {  # register 531 value -> seconds per unit
    "eurotherm3216": {0: 60.0, 1: 3600.0, 2: 1.0},
    "eurotherm2416": {0: 1.0, 1: 60.0, 2: 3600.0},
}
_TIME_UNIT_S_2416 = {0: 1.0, 1: 60.0, 2: 3600.0}
_DWELL_UNIT_S_3216 = {0: 3600.0, 1: 60.0}


class _Drop:
    """Marker: close the connection instead of replying."""


DROP = _Drop()


def _to_u16(value: int) -> int:
    return max(-32768, min(32767, value)) & 0xFFFF


def _from_u16(raw: int) -> int:
    return raw - 0x10000 if raw & 0x8000 else raw


class EurothermEmulator:
    """One emulated Eurotherm controller with its furnace.

    Parameters
    ----------
    name
        Instrument name (for messages).
    model
        ``"eurotherm3216"`` or ``"eurotherm2416"``: which register map and programmer.
    unit
        Modbus unit address, 1-254.
    connection
        ``modbus-tcp://HOST:PORT``, ``socket://HOST:PORT`` or ``pty://``; used by
        :meth:`start` (a :class:`ModbusLine` hosting several units ignores it).
    clock
        The lab clock (lab seconds); defaults to a real-time clock.
    settings
        :class:`EurothermSimSettings` or the raw ``sim:`` mapping of a lab YAML.

    Attributes
    ----------
    thermal
        The :class:`~athanor.simulators.thermal.FurnaceModel` (the physics).
    faults
        Live fault switches (:class:`EurothermFaults`); assign to change them.
    eeprom_writes
        Accepted writes per EEPROM-backed parameter name (``"TG.SP"``...).
    requests
        Requests addressed to this unit so far (answered or not).
    requested
        Those requests counted by the register address they start at.
    """

    def __init__(
        self,
        name: str,
        model: Model = "eurotherm3216",
        unit: int = 1,
        connection: str = "modbus-tcp://127.0.0.1:0",
        clock: Clock | None = None,
        settings: EurothermSimSettings | dict | None = None,
    ) -> None:
        if model not in _STATE_CODES:
            raise ValueError(f"{name}: model {model!r} is not one of {sorted(_STATE_CODES)}")
        if not 1 <= unit <= 254:
            raise ValueError(f"{name}: unit {unit} is outside the Modbus unit range 1-254")
        if not isinstance(settings, EurothermSimSettings):
            settings = EurothermSimSettings.model_validate(settings or {})
        self.name, self.model, self.unit, self.connection = name, model, unit, connection
        self.settings = settings
        self.faults = settings.faults.model_copy()
        self.clock = clock or ScaledClock(1.0)
        self.thermal = FurnaceModel(
            self.clock,
            settings.thermal(),
            seed=settings.seed,
            step=settings.step_s,
            history_interval=settings.history_interval_s,
        )
        self.thermal.pb, self.thermal.ti, self.thermal.td = (
            settings.pb_c, settings.ti_s, settings.td_s)  # fmt: skip
        self.eeprom_writes: Counter[str] = Counter()
        self.requests = 0
        self.requested: Counter[int] = Counter()
        self._map = self._register_map(model, settings.firmware)
        self._scale = 10**settings.decimal_places
        amb = settings.ambient_c
        self._values: dict[int, float] = {  # stored parameter values, engineering units
            2: amb, 3: 0.0, 13: 1250.0, 14: RANGE_LO, 15: 0, 24: amb, 25: amb, 26: amb,
            30: 100.0, 31: 0.0, 35: 0.0, 111: settings.sp_high_c, 112: settings.sp_low_c,
            199: 0, 276: 0, 22: 1, 34: 0.0, 321: 1, 328: 1,
            531: 0 if model == "eurotherm3216" else 1,  # ramp units: per minute on both
        }  # fmt: skip
        self._program_raw: dict[int, int] = {}
        self._new_alarm = False
        self._alarms = 0
        self._line: ModbusLine | None = None
        self._apply()

    @staticmethod
    def _register_map(model: Model, firmware: EurothermFirmware) -> dict[int, Param]:
        """The parameters this unit answers for; any other address gets exception 02."""
        registers = dict(COMMON)
        registers.update(ONLY_2416 if model == "eurotherm2416" else ONLY_3216)
        absent: set[int] = set()
        if not firmware.programmer:
            absent.update(PROGRAMMER_2416 if model == "eurotherm2416" else PROGRAMMER_3216)
            absent.update(a for a in registers if a >= 1280)
        if firmware.minimal_map:
            absent.update(OUTSIDE_DOCUMENTED_MAP)
        return {a: p for a, p in registers.items() if a not in absent}

    # ------------------------------------------------------------------ entry points

    async def start(self) -> str:
        """Open a line of its own at ``connection``; returns the URL or pty path."""
        self._line = ModbusLine(self.connection, [self], name=self.name)
        return await self._line.start()

    async def stop(self) -> None:
        if self._line is not None:
            await self._line.stop()
            self._line = None

    def history(self, start: float, end: float) -> tuple[list[float], list[float]]:
        """Lab times (s) and sample temperatures (°C) between ``start`` and ``end``."""
        return self.thermal.history(start, end)

    def sim_device(self) -> SimDevice:
        """This controller's registers as a pymodbus ``SimDevice`` (one per unit)."""
        blocks = [SimData(a, values=0, datatype=DataType.REGISTERS) for a in self._map]
        blocks += [
            SimData(FLOAT_BASE + 2 * a, count=2, values=0, datatype=DataType.REGISTERS)
            for a in self._map
            if a < 1280
        ]
        if self.model == "eurotherm2416" and self.settings.firmware.programmer:
            blocks += [
                SimData(self._segment_base(p, s), count=8, values=0, datatype=DataType.REGISTERS)
                for p in PROGRAMS_2416
                for s in SEGMENTS_2416
            ]
        return SimDevice(self.unit, simdata=blocks, action=self._action)

    async def respond(self, request: ModbusPDU, core: SimCore) -> ModbusPDU | _Drop | None:
        """The reply to one request addressed to this unit, faults applied (None: silence)."""
        self.requests += 1
        self.requested[getattr(request, "address", -1)] += 1
        faults = self.faults
        if faults.drop_connection:
            return DROP
        if faults.no_reply:
            return None
        if faults.late_reply_s:
            await asyncio.sleep(faults.late_reply_s)
        if faults.exception_code:
            return ExceptionResponse(request.function_code, faults.exception_code)
        reply = await request.datastore_update(core, self.unit)  # type: ignore[arg-type]
        if faults.lose_replies:
            faults.lose_replies -= 1
            return None
        return reply

    # ------------------------------------------------------------------ datastore action

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        self.thermal.update()
        self.thermal.sensor_break = self.faults.sensor_break
        if set_values is None:
            for a in range(address, address + count):
                registers[a - start_address] = self._read_raw(a)
            return None
        return self._write(address, [int(v) for v in set_values])

    def _read_raw(self, address: int) -> int:
        if address >= FLOAT_BASE:
            base, word = divmod(address - FLOAT_BASE, 2)
            packed = self._pack32(base, self._value(base))
            if self.settings.firmware.float_word_order == "low_first":
                word = 1 - word
            return int.from_bytes(packed[2 * word : 2 * word + 2], "big")
        if address >= PROGRAM_BASE:
            return self._program_raw.get(address, 0)
        if address >= 1280 and self.model == "eurotherm3216":
            return self._program_raw.get(address, 0)
        return _to_u16(round(self._value(address) * self._unit_scale(address)))

    def _unit_scale(self, address: int) -> float:
        return {"T": self._scale, "P": 10, "S": 1, "M": 10, "I": 1}[self._map[address].kind]

    def _pack32(self, address: int, value: float) -> bytes:
        kind = self._map[address].kind
        if kind == "S":
            return struct.pack(">i", round(value * 1000))
        if kind == "M":
            return struct.pack(">i", round(value * 60_000))
        return struct.pack(">f", value)

    def _value(self, address: int) -> float:
        """The live engineering value of a parameter."""
        th = self.thermal
        if address == 1:
            return RANGE_HI if self.faults.sensor_break or self.faults.over_range else th.pv
        if address == 4:
            return th.output
        if address == 5:
            return th.working_sp
        if address == 6:
            return th.pb
        if address == 8:
            return th.ti
        if address == 9:
            return th.td
        if address == 11:
            return RANGE_LO
        if address == 12:
            return RANGE_HI
        if address == 23:
            return _STATE_CODES[self.model][th.program_state]
        if address == 39:
            return self._value(1) - th.working_sp
        if address == 75:
            return self._status()
        if address == 107:
            return 0x0105
        if address == 122:
            return 3216 if self.model == "eurotherm3216" else 2416
        if address == 258:
            return int(self.faults.sensor_break)
        if address == 260:
            self._status()
            return int(self._new_alarm)
        if address == 525:
            return self.settings.decimal_places
        if address in (36, 58):
            return th.program_time_left()[address == 58] / 60.0
        if address == 56:
            return th.segment + 1 if th.program_state in ("run", "hold") else 0
        return self._values.get(address, 0.0)

    def _status(self) -> int:
        pv, f = self._value(1), self.faults
        alarms = (pv >= self._values[13]) << B_AL1 | (pv <= self._values[14]) << B_AL2
        alarms |= f.sensor_break << B_SBREAK | f.over_range << B_OVER_RANGE
        if alarms & ~self._alarms:
            self._new_alarm = True
        self._alarms = alarms
        word = alarms
        word |= (self.thermal.mode == "manual") << B_MANUAL
        word |= (self.thermal.program_state == "complete") << B_PROG_END
        word |= self._new_alarm << B_NEW_ALARM
        return word

    # ------------------------------------------------------------------ writes

    def _write(self, address: int, values: list[int]) -> ExcCodes | None:
        """Check every written value first; apply all or nothing (exception 03)."""
        updates: list[tuple[int, float | int]] = []
        if address >= FLOAT_BASE:
            if (address - FLOAT_BASE) % 2 or len(values) % 2:
                return ExcCodes.ILLEGAL_VALUE
            for i in range(0, len(values), 2):
                base = (address - FLOAT_BASE) // 2 + i // 2
                high, low = values[i : i + 2]
                if self.settings.firmware.float_word_order == "low_first":
                    high, low = low, high
                packed = struct.pack(">HH", high, low)
                kind = self._map[base].kind
                if kind in ("S", "M"):
                    value = struct.unpack(">i", packed)[0] / (1000 if kind == "S" else 60_000)
                else:
                    value = struct.unpack(">f", packed)[0]
                updates.append((base, value))
        else:
            for i, raw in enumerate(values):
                a = address + i
                if a >= 1280 and (a >= PROGRAM_BASE or self.model == "eurotherm3216"):
                    updates.append((a, _from_u16(raw)))
                else:
                    updates.append((a, _from_u16(raw) / self._unit_scale(a)))
        for a, value in updates:
            if not self._allowed(a, value):
                return ExcCodes.ILLEGAL_VALUE
        for a, value in updates:
            self._store(a, value)
        self._apply()
        return None

    def _limits(self, address: int) -> tuple[float, float] | None:
        """Allowed range of a writable parameter (None: read-only)."""
        v, sp = self._values, (self._values[112], self._values[111])
        fixed: dict[int, tuple[float, float]] = {
            2: sp, 24: sp, 25: sp, 26: sp, 3: (v[31], v[30]), 6: (1 / self._scale, 9999),
            8: (0, 9999), 9: (0, 9999), 13: (RANGE_LO, RANGE_HI), 14: (RANGE_LO, RANGE_HI),
            15: (0, 1), 30: (v[31], 100), 31: (0, v[30]), 35: (0, 3000),
            111: (v[112] + 1 / self._scale, RANGE_HI), 112: (RANGE_LO, v[111] - 1 / self._scale),
            199: (0, 2), 274: (0, 1), 276: (0, 1), 531: (0, 2), 22: (1, max(PROGRAMS_2416)),
            34: (0, 100), 321: (0, 1), 328: (1, 3),
        }  # fmt: skip
        return fixed.get(address)

    def _allowed(self, address: int, value: float) -> bool:
        if address >= PROGRAM_BASE or (address >= 1280 and self.model == "eurotherm3216"):
            return self._program_value_allowed(address, int(value))
        param = self._map.get(address)
        if param is None or not param.writable:
            return False
        if address == 23:
            return value in (
                _STATE_CODES[self.model]["reset"],
                _STATE_CODES[self.model]["run"],
                _STATE_CODES[self.model]["hold"],
            )
        low, high = self._limits(address) or (1, 0)
        return value == value and low <= value <= high  # value == value: not NaN

    def _program_value_allowed(self, address: int, raw: int) -> bool:
        sp_lo, sp_hi = (self._values[112] * self._scale, self._values[111] * self._scale)
        if self.model == "eurotherm3216":
            field = (address - 1280) % 3  # dwell, setpoint, ramp
            return sp_lo <= raw <= sp_hi if field == 1 else 0 <= raw <= 9999
        segment = (address - PROGRAM_BASE) % 136 // 8
        field = (address - PROGRAM_BASE) % 8
        if segment == 0:  # header: holdback type/value, ramp units, dwell units, cycles
            return {2: 0 <= raw <= 2, 3: 0 <= raw <= 2}.get(field, 0 <= raw <= 9999)
        if field == 0:
            return 0 <= raw <= 4
        if field == 1:
            return sp_lo <= raw <= sp_hi
        if field == 3:
            return 0 <= raw <= 9999
        return 0 <= raw <= 32767

    def _store(self, address: int, value: float) -> None:
        if address >= 1280:
            self._program_raw[address] = _to_u16(int(value))
            self.eeprom_writes["PROGRAM"] += 1
            return
        param = self._map[address]
        if param.eeprom:
            self.eeprom_writes[param.name] += 1
        th = self.thermal
        if address == 2:
            self._values[25 if self._values[15] else 24] = value
        elif address == 6:
            th.pb = value
        elif address == 8:
            th.ti = value
        elif address == 9:
            th.td = value
        elif address == 111 or address == 112:
            self._values[address] = value
            for a in (2, 24, 25, 26):
                self._values[a] = min(max(self._values[a], self._values[112]), self._values[111])
        elif address == 199:
            th.set_mode(("auto", "manual", "standby")[int(value)])
            self._values[199] = value
        elif address == 274:
            self._new_alarm = False
        elif address == 23:
            self._command_program(int(value))
        else:
            self._values[address] = value

    def _apply(self) -> None:
        """Push the stored parameters into the controller model."""
        v, th = self._values, self.thermal
        v[2] = v[25] if v[15] else v[24]
        th.target_sp = v[26] if v[276] else v[2]
        th.ramp_rate = v[35] / _RAMP_UNIT_S[self.model][int(v[531])]
        th.manual_op, th.op_hi, th.op_lo = v[3], v[30], v[31]
        th.sbreak_op = v[34] if self.model == "eurotherm2416" else 0.0

    # ------------------------------------------------------------------ programmer

    @staticmethod
    def _segment_base(program: int, segment: int) -> int:
        return PROGRAM_BASE + 136 * program + 8 * segment

    def _command_program(self, code: int) -> None:
        codes = _STATE_CODES[self.model]
        th = self.thermal
        if code == codes["reset"]:
            th.reset_program()
        elif code == codes["hold"]:
            th.hold_program()
        elif th.program_state == "hold":
            th.resume_program()
        elif th.program_state != "run":
            segments, end = self._decode_program()
            th.run_program(segments, end)

    def _decode_program(self) -> tuple[list[Segment], Literal["dwell", "reset"]]:
        raw = self._program_raw.get
        s = self._scale
        if self.model == "eurotherm3216":
            rate_unit = _RAMP_UNIT_S[self.model][int(self._values[531])]
            dwell_unit = _DWELL_UNIT_S_3216[int(self._values[321])]
            triplets = [
                (_from_u16(raw(1280 + 3 * i, 0)), _from_u16(raw(1281 + 3 * i, 0)) / s,
                 _from_u16(raw(1282 + 3 * i, 0)) / s)
                for i in range(8)
            ]  # fmt: skip
            last = max((i for i, t in enumerate(triplets) if any(t)), default=-1)
            segments: list[Segment] = []
            for dwell, target, ramp in triplets[: last + 1]:
                if ramp:
                    segments.append(Segment("ramp", target=target, rate=ramp / rate_unit))
                else:
                    segments.append(Segment("step", target=target))
                if dwell:
                    segments.append(Segment("dwell", duration=dwell * dwell_unit))
            return segments, "reset" if self._values[328] == 3 else "dwell"
        program = int(self._values[22])
        head = self._segment_base(program, 0)
        rate_unit = _TIME_UNIT_S_2416[raw(head + 2, 0)]
        dwell_unit = _TIME_UNIT_S_2416[raw(head + 3, 0)]
        segments, end = [], "dwell"
        for n in range(1, max(SEGMENTS_2416) + 1):
            base = self._segment_base(program, n)
            kind = raw(base, 0)
            target, value = _from_u16(raw(base + 1, 0)) / s, _from_u16(raw(base + 2, 0)) / s
            if kind == 0:
                end = "reset" if raw(base + 3, 0) == 1 else "dwell"
                break
            if kind == 1:
                segments.append(Segment("ramp", target=target, rate=value / rate_unit))
            elif kind == 2:
                segments.append(Segment("ramp_time", target=target, duration=value * dwell_unit))
            elif kind == 3:
                segments.append(Segment("dwell", duration=value * dwell_unit))
            else:
                segments.append(Segment("step", target=target))
        return segments, end  # type: ignore[return-value]


# --------------------------------------------------------------------------- the line


class ModbusLine:
    """One wire (TCP gateway, RTU over TCP, RTU on a pty) hosting emulated units.

    Parameters
    ----------
    connection
        ``modbus-tcp://HOST:PORT``, ``socket://HOST:PORT`` or ``pty://``.
    emulators
        The controllers on this line; their unit addresses must differ.
    """

    def __init__(
        self, connection: str, emulators: Iterable[EurothermEmulator], name: str = ""
    ) -> None:
        self.connection = connection
        self.name = name or connection
        self.units = {e.unit: e for e in emulators}
        if not self.units:
            raise ValueError(f"{self.name}: a line needs at least one emulator")
        parts = urlsplit(connection)
        if parts.scheme not in ("modbus-tcp", "socket", "pty"):
            raise ValueError(
                f"{self.name}: connection {connection!r} is not modbus-tcp://HOST:PORT, "
                "socket://HOST:PORT or pty://"
            )
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._core = SimCore([e.sim_device() for e in self.units.values()])
        self._decoder = DecodePDU(True)
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task] = set()
        self._pty: PtyLink | None = None
        self._pty_task: asyncio.Task | None = None
        self.url = ""

    async def start(self) -> str:
        """Open the line; returns the URL (real port) or the pty path a client opens."""
        if self._scheme == "pty":
            self._pty = PtyLink()
            self._pty.attach(asyncio.get_running_loop())
            self._pty_task = asyncio.create_task(self._serve_pty(self._pty))
            self.url = self._pty.path
            return self.url
        host = self._host or "127.0.0.1"
        try:
            self._server = await asyncio.start_server(self._serve_tcp, host, self._port or 0)
        except OSError as exc:
            raise OSError(
                exc.errno, f"{self.name}: cannot listen on {self.connection}: {exc.strerror}"
            ) from None
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"{self._scheme}://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        if self._pty_task is not None:
            self._pty_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pty_task
            self._pty_task = None
        if self._pty is not None:
            self._pty.close(asyncio.get_running_loop())
            self._pty = None

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        framer = self._framer()
        buffer = b""
        try:
            while not writer.is_closing() and (data := await reader.read(4096)):
                buffer = await self._consume(buffer + data, framer, writer.write, writer.close)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _serve_pty(self, link: PtyLink) -> None:
        framer, buffer = self._framer(), b""
        while True:
            buffer = await self._consume(buffer + await link.read(), framer, link.write, None)

    def _framer(self) -> FramerBase:
        return (FramerSocket if self._scheme == "modbus-tcp" else FramerRTU)(self._decoder)

    async def _consume(
        self,
        buffer: bytes,
        framer: FramerBase,
        send: Callable[[bytes], object],
        drop: Callable[[], object] | None,
    ) -> bytes:
        """Answer every complete request in ``buffer``; return what is left."""
        while buffer:
            used, unit, tid, payload = framer.decode(buffer)
            if not used:
                return buffer if len(buffer) < 2 * FramerBase.MAX_SIZE else b""
            buffer = buffer[used:]
            if not payload:
                continue  # bad CRC: a real device ignores the frame
            reply = await self._answer(unit, payload)
            if reply is DROP:
                if drop is not None:
                    drop()
                    return b""
                continue  # a serial line cannot drop: the request goes unanswered
            if reply is None:
                continue
            reply.dev_id, reply.transaction_id = unit, tid
            frame = framer.buildFrame(reply)
            emulator = self.units.get(unit)
            if emulator is not None and emulator.faults.garbage:
                frame = bytes(b ^ 0x5A for b in frame)
            send(frame)
        return buffer

    async def _answer(self, unit: int, payload: bytes) -> ModbusPDU | _Drop | None:
        try:
            request = self._decoder.decode(payload)
        except Exception:  # a frame pymodbus cannot parse
            request = None
        if request is None:
            return ExceptionResponse(payload[0] & 0x7F, ExcCodes.ILLEGAL_FUNCTION)
        emulator = self.units.get(unit)
        if emulator is None:
            if self._scheme == "modbus-tcp":
                return ExceptionResponse(request.function_code, EXC_GATEWAY_NO_RESPONSE)
            return None
        request.dev_id = unit
        return await emulator.respond(request, self._core)
