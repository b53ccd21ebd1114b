"""An emulated Panalytical Aeris-style diffractometer on its ASCII-over-TCP interface.

One message per connection, framed ``@ ... @END`` (see ``reference/instruments.md``):

- ``@STATUS_REQUEST@UNIT=xrd@END`` → ``READY=yes|no``
- ``@STATUS_REQUEST@SYSTEM@END`` → ``SYSTEM=remote``
- ``@STATUS_REQUEST@LOCATION=0,<slot>@END`` → ``STATE=free|occupied``
- ``@SAMPLE@ADD@APPLICATION=<program>@SAMPLE_ID=<id>@AT=0,<slot>@END``
- ``@SAMPLE@MEASURE@SAMPLE_ID=<id>@APPLICATION=<program>@END``
- ``@SAMPLE@REMOVE@SAMPLE_ID=<id>@END``
- ``@SAMPLE@MOVE@SAMPLE_ID=<id>@AT=0,<a>@TO=0,<b>@END`` (``SAMPLE_ID`` may be bare)

A reply echoes the request's fields, adds the answer fields, then ``normal`` or
``fatal@REASON=<why>``, and ends ``@END``; e.g.
``@STATUS_REQUEST@UNIT=xrd@READY=yes@normal@END``. A measurement takes the program's
duration in lab time (READY=no meanwhile), then ``<sample_id>.xy`` and
``<sample_id>.xrdml`` appear in the exchange folder, with counts simulated from the
sample's true phases (:class:`~athanor.simulators.world.SampleTruth`).

Where the documented facts are silent, :class:`AerisSimSettings` picks the variant:
``repeat_add`` (how a repeated ADD is answered), ``busy_after_file_s`` (busy for a while
after the pattern file is written) and ``named_programs`` (programs whose names do not
encode their 2θ range); :class:`AerisFaults` ``lose_replies`` loses replies of commands
that were carried out.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import threading
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, NonNegativeInt, field_validator

from athanor.clock import Clock
from athanor.schema import StrictModel
from athanor.simulators.hosting import count_down
from athanor.simulators.world import PhaseState, SampleTruth
from athanor.simulators.xrd_pattern import (
    CU_KA1,
    CU_KA2,
    Instrument,
    PatternSimulator,
    ScanProgram,
    Specimen,
)

log = logging.getLogger(__name__)

XRDML_NAMESPACE = "http://www.xrdml.com/XRDMeasurement/2.1"
_MAX_MESSAGE = 4096
_READ_TIMEOUT = 5.0  # wall seconds a client may take to send its message


class AerisFaults(StrictModel):
    """Faults to inject; switch them in the lab YAML or at run time (``emulator.faults.x = ...``).

    ``busy``: READY=no, and ADD/MEASURE answer fatal "busy". ``fatal``: every SAMPLE
    command answers fatal with this reason. ``no_reply``: read the message, never answer.
    ``drop_connection``: close the connection without a reply. ``no_file``: measure, but
    never write the pattern. ``truncated_file``: write the ``.xrdml`` cut in the middle.
    ``reply_delay``: wall seconds to wait before each reply (a slow instrument).
    ``lose_replies``: per command (``ADD``, ``MEASURE``, ``REMOVE``, ``MOVE``,
    ``STATUS_REQUEST``), how many of its next replies are lost: the command is carried
    out, then the connection closes without a reply. Each lost reply counts one down.
    """

    busy: bool = False
    fatal: str | None = None
    no_reply: bool = False
    drop_connection: bool = False
    no_file: bool = False
    truncated_file: bool = False
    reply_delay: float = Field(0.0, ge=0, le=60, description="wall seconds")
    lose_replies: dict[
        Literal["ADD", "MEASURE", "REMOVE", "MOVE", "STATUS_REQUEST"], NonNegativeInt
    ] = Field(default_factory=dict, description="command -> how many next replies to lose")


class AerisSimSettings(StrictModel):
    """The ``sim:`` block of a diffractometer in a lab YAML.

    ``repeat_add``: the answer to an ADD of a sample already registered at that slot,
    ``normal`` or ``already_known`` (``fatal@REASON=sample <id> already known``).
    ``busy_after_file_s``: lab seconds the instrument stays busy (READY=no, REMOVE and
    MOVE refused) after the end of a scan, when the pattern file is already written.
    ``named_programs``: programs named by the site, each with the scan it runs, e.g.
    ``{phase-id-fast: 10-80_4-minutes}``. ``specimen``: what the samples add beyond
    their phases' lines (:class:`~athanor.simulators.xrd_pattern.Specimen`), e.g.
    ``{hump_cps: 300, displacement_mm: 0.1}``.
    """

    programs: list[str] = Field(
        default_factory=lambda: [
            "10-100_8-minutes",
            "10-100_30-minutes",
            "10-80_4-minutes",
            "20-60_2-minutes",
        ],
        min_length=1,
        description="scan programs defined on the instrument",
    )
    named_programs: dict[str, str] = Field(
        default_factory=dict,
        description="program name -> the START-END_TIME-UNIT scan it runs",
    )
    repeat_add: Literal["normal", "already_known"] = "normal"
    busy_after_file_s: float = Field(0.0, ge=0, le=86400, description="lab seconds")
    slots: int = Field(6, ge=1, le=100)
    seed: int = 0
    count_rate: float = Field(
        2.0e4,
        gt=0,
        le=1e9,
        description="counts/s·degree of pure BaTiO3's strongest line: sets the noise level",
    )
    background_cps: float = Field(60.0, ge=0, le=1e6)
    step: float = Field(0.01, ge=0.005, le=0.05, description="degrees 2θ per step")
    fwhm_instrument: float = Field(
        0.06, ge=0.02, le=0.3, description="instrument FWHM (degrees) at low angle"
    )
    specimen: Specimen = Field(
        default_factory=Specimen,
        description="amorphous hump, displacement, texture, microabsorption (all off)",
    )
    faults: AerisFaults = Field(default_factory=AerisFaults)

    @field_validator("programs")
    @classmethod
    def _parse_programs(cls, programs: list[str]) -> list[str]:
        for name in programs:
            ScanProgram.parse(name)
        return programs

    @field_validator("named_programs")
    @classmethod
    def _parse_named_programs(cls, programs: dict[str, str]) -> dict[str, str]:
        for scan in programs.values():
            ScanProgram.parse(scan)
        return programs

    def scan_program(self, name: str) -> ScanProgram | None:
        """The scan that program ``name`` runs; None if the instrument has no such program."""
        if name in self.programs:
            return ScanProgram.parse(name)
        if name in self.named_programs:
            return replace(ScanProgram.parse(self.named_programs[name]), name=name)
        return None

    def unknown_program(self, name: str) -> str:
        """The refusal of a program the instrument does not have."""
        defined = ", ".join([*self.programs, *self.named_programs])
        return f"unknown application {name!r}; defined: {defined}"

    def instrument(self) -> Instrument:
        # Caglioti W sets the low-angle width; U and V keep the default shape.
        return Instrument(
            caglioti_w=self.fwhm_instrument**2,
            count_rate=self.count_rate,
            background_cps=self.background_cps,
            step=self.step,
        )


@dataclass
class _Measurement:
    sample_id: str
    program: ScanProgram
    end: float
    index: int  # scans of this sample before this one (seeds the counting noise)
    task: asyncio.Task[None] | None = None
    done: bool = False


class AerisEmulator:
    """The diffractometer server (an :class:`~athanor.simulators.hosting.Emulator`).

    Parameters
    ----------
    exchange_dir
        Folder where patterns are written (created if missing).
    truth
        ``phases(sample_id) -> PhaseState`` of the samples put in.
    clock
        The lab clock: a measurement lasts the program's duration in lab seconds.
    settings
        Programs, slots, noise and faults.
    host, port
        Where to listen; port 0 takes any free port.
    """

    def __init__(
        self,
        exchange_dir: str | Path,
        truth: SampleTruth,
        clock: Clock,
        settings: AerisSimSettings | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "xrd",
    ) -> None:
        self.name = name
        self.exchange_dir = Path(exchange_dir)
        self.truth = truth
        self.clock = clock
        self.settings = settings or AerisSimSettings()
        self.host, self.port = host, port
        self.simulator = PatternSimulator(
            seed=self.settings.seed,
            instrument=self.settings.instrument(),
            specimen=self.settings.specimen,
        )
        self.slots: dict[int, str] = {}  # slot -> sample id
        self.programs: dict[str, str] = {}  # sample id -> program given at ADD
        self.measurement: _Measurement | None = None
        self.scans: list[str] = []  # sample id of every scan started, in order
        self._server: asyncio.Server | None = None
        self._held: set[asyncio.StreamWriter] = set()
        self._finishing = threading.Lock()

    @property
    def faults(self) -> AerisFaults:
        return self.settings.faults

    @classmethod
    def from_config(cls, name: str, config: Any, truth: SampleTruth, clock: Clock) -> AerisEmulator:
        """Build from a lab config's diffractometer entry (``connection``, ``exchange_dir``,
        ``slots``, ``sim``); the ``sim`` block is validated by :class:`AerisSimSettings`."""
        settings = AerisSimSettings.model_validate({"slots": config.slots, **config.sim})
        host, _, port = config.connection.removeprefix("tcp://").rpartition(":")
        return cls(
            config.exchange_dir, truth, clock, settings, host=host, port=int(port), name=name
        )

    # ------------------------------------------------------------------ server

    async def start(self) -> str:
        self.exchange_dir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.simulator.warm)
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        port = self._server.sockets[0].getsockname()[1]
        return f"tcp://{self.host}:{port}"

    async def stop(self) -> None:
        if self.measurement is not None and self.measurement.task is not None:
            self.measurement.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.measurement.task
        for writer in list(self._held):
            writer.close()
        self._held.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                data = await asyncio.wait_for(reader.readuntil(b"@END"), _READ_TIMEOUT)
            except asyncio.LimitOverrunError:
                data = b""
            except asyncio.IncompleteReadError as exc:
                data = exc.partial
            faults = self.faults
            if faults.drop_connection:
                return
            if faults.no_reply:
                self._held.add(writer)
                return
            message = data.decode("ascii", errors="replace")
            reply = await self.handle(message)
            if self._lose_reply(message):
                return  # carried out, but the reply never leaves: closed unanswered
            if faults.reply_delay:
                await asyncio.sleep(faults.reply_delay)
            writer.write(reply.encode("ascii", errors="replace"))
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            if writer not in self._held:
                writer.close()

    def _lose_reply(self, message: str) -> bool:
        """Whether the reply to ``message`` is one to lose (``faults.lose_replies``)."""
        fields = _fields(message) or [""]
        command = fields[1] if fields[0] == "SAMPLE" and len(fields) > 1 else fields[0]
        return count_down(self.faults.lose_replies, command)

    # ------------------------------------------------------------------ protocol

    async def handle(self, message: str) -> str:
        """The reply to one message (without the transport)."""
        self._finish_if_due()
        fields = _fields(message)
        if fields is None:
            text = message.strip()
            return _reply([], [], f"message must be framed '@ ... @END', got {text[:60]!r}")
        if not fields:
            return _reply([], [], "empty message")
        if fields[0] == "STATUS_REQUEST" and len(fields) == 2:
            return _reply(fields, *self._status(fields[1]))
        if fields[0] == "SAMPLE" and len(fields) >= 2:
            if self.faults.fatal:
                return _reply(fields, [], self.faults.fatal)
            args = dict(f.partition("=")[::2] for f in fields[2:])
            action = {"ADD": self._add, "MEASURE": self._measure, "REMOVE": self._remove}
            action["MOVE"] = self._move
            if fields[1] not in action:
                return _reply(fields, [], f"unknown SAMPLE command {fields[1]!r}")
            return _reply(fields, [], await action[fields[1]](args))
        return _reply(fields, [], f"unknown command {'@'.join(fields[:2])!r}")

    def _status(self, what: str) -> tuple[list[str], str | None]:
        if what == "UNIT=xrd":
            return [f"READY={'no' if self._busy() else 'yes'}"], None
        if what == "SYSTEM":
            return ["SYSTEM=remote"], None
        if what.startswith("LOCATION="):
            slot = self._slot(what.removeprefix("LOCATION="))
            if isinstance(slot, str):
                return [], slot
            return [f"STATE={'occupied' if slot in self.slots else 'free'}"], None
        return [], f"unknown status request {what!r}"

    def _busy(self) -> bool:
        return self.faults.busy or self._measuring() is not None

    def _measuring(self) -> str | None:
        """The sample being measured: scanning, or within ``busy_after_file_s`` after."""
        m = self.measurement
        if m is None:
            return None
        if m.done and self.clock.now() >= m.end + self.settings.busy_after_file_s:
            return None
        return m.sample_id

    def _slot(self, location: str) -> int | str:
        """Slot number of ``0,<slot>``, or the reason it is not one."""
        tray, _, slot = location.partition(",")
        if tray != "0" or not slot.isdigit() or not 1 <= int(slot) <= self.settings.slots:
            return f"location {location!r} is not 0,<slot> with slot 1-{self.settings.slots}"
        return int(slot)

    def _where(self, sample_id: str) -> int | None:
        return next((s for s, sid in self.slots.items() if sid == sample_id), None)

    async def _add(self, args: dict[str, str]) -> str | None:
        sample_id, program = args.get("SAMPLE_ID", ""), args.get("APPLICATION", "")
        if not sample_id:
            return "ADD needs SAMPLE_ID=<id>"
        if self.settings.scan_program(program) is None:
            return self.settings.unknown_program(program)
        slot = self._slot(args.get("AT", ""))
        if isinstance(slot, str):
            return slot
        if self.faults.busy:
            return "instrument busy"
        here = self._where(sample_id)
        if here == slot and self.settings.repeat_add == "already_known":
            return f"sample {sample_id} already known"
        if here == slot:
            self.programs[sample_id] = program
            return None
        if here is not None:
            return f"sample {sample_id} is already at 0,{here}"
        if slot in self.slots:
            return f"location 0,{slot} is occupied by sample {self.slots[slot]}"
        self.slots[slot] = sample_id
        self.programs[sample_id] = program
        return None

    async def _measure(self, args: dict[str, str]) -> str | None:
        sample_id = args.get("SAMPLE_ID", "")
        program = args.get("APPLICATION") or self.programs.get(sample_id, "")
        if self._where(sample_id) is None:
            return f"sample {sample_id!r} is not on the instrument; ADD it first"
        scan = self.settings.scan_program(program)
        if scan is None:
            return self.settings.unknown_program(program)
        if self._busy():
            return "instrument busy"
        index = self.scans.count(sample_id)
        self.scans.append(sample_id)
        end = self.clock.now() + scan.duration_s
        self.measurement = _Measurement(sample_id, scan, end, index)
        self.measurement.task = asyncio.create_task(self._run(self.measurement))
        return None

    async def _remove(self, args: dict[str, str]) -> str | None:
        sample_id = args.get("SAMPLE_ID", "")
        slot = self._where(sample_id)
        if slot is None:
            return f"sample {sample_id!r} is not on the instrument"
        if self._measuring() == sample_id:
            return f"sample {sample_id} is being measured"
        del self.slots[slot]
        self.programs.pop(sample_id, None)
        return None

    async def _move(self, args: dict[str, str]) -> str | None:
        source, target = self._slot(args.get("AT", "")), self._slot(args.get("TO", ""))
        for slot in (source, target):
            if isinstance(slot, str):
                return slot
        assert isinstance(source, int) and isinstance(target, int)
        if source not in self.slots:
            return f"location 0,{source} is empty"
        if target in self.slots and target != source:
            return f"location 0,{target} is occupied by sample {self.slots[target]}"
        if self._busy():
            return "instrument busy"
        self.slots[target] = self.slots.pop(source)
        return None

    # ------------------------------------------------------------------ measurement

    async def _run(self, measurement: _Measurement) -> None:
        # Lab time may be scaled or moved by hand (ManualClock): poll it, never sleep on it.
        while self.clock.now() < measurement.end:
            wall = self.clock.to_wall(max(measurement.end - self.clock.now(), 0.0))
            await asyncio.sleep(min(max(wall, 0.002), 0.05))
        await asyncio.to_thread(self._finish, measurement)

    def _finish_if_due(self) -> None:
        m = self.measurement
        if m is not None and not m.done and self.clock.now() >= m.end:
            self._finish(m)

    def _finish(self, measurement: _Measurement) -> None:
        """Write the pattern files (once), then become ready."""
        with self._finishing:
            if not measurement.done:
                self._write_pattern(measurement)
                measurement.done = True

    def _write_pattern(self, measurement: _Measurement) -> None:
        sample_id = measurement.sample_id
        if self.faults.no_file:
            return
        try:
            state = self.truth.phases(sample_id)
        except KeyError:
            log.warning(
                "%s: no ground truth for sample %r; measuring an empty holder", self.name, sample_id
            )
            state = PhaseState(fractions={})
        seed = [self.settings.seed, zlib.crc32(sample_id.encode()), measurement.index]
        rng = np.random.default_rng(seed)
        two_theta, counts, counting_time = self.simulator.pattern(state, measurement.program, rng)
        xy = "".join(f"{x:.4f} {int(c)}\n" for x, c in zip(two_theta, counts, strict=True))
        xrdml = xrdml_document(sample_id, two_theta, counts, counting_time, measurement.program)
        if self.faults.truncated_file:
            xrdml = xrdml[: len(xrdml) // 2]
        _write_atomically(self.exchange_dir / f"{sample_id}.xy", xy)
        _write_atomically(self.exchange_dir / f"{sample_id}.xrdml", xrdml)


def _fields(message: str) -> list[str] | None:
    """The ``@``-separated fields of a framed message, None when it is not framed."""
    text = message.strip()
    if not (text.startswith("@") and text.endswith("@END")):
        return None
    return [f for f in text[1:-4].split("@") if f]


def _reply(fields: list[str], answer: list[str], fatal: str | None) -> str:
    result = ["fatal", f"REASON={fatal}"] if fatal else ["normal"]
    return "@" + "@".join([*fields, *answer, *result]) + "@END"


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def xrdml_document(
    sample_id: str,
    two_theta: np.ndarray,
    counts: np.ndarray,
    counting_time: float,
    program: ScanProgram,
) -> str:
    """An XRDML 2.1 document holding one continuous 2θ/ω scan."""
    end = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = end - dt.timedelta(seconds=program.duration_s)
    values = " ".join(str(int(c)) for c in counts)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<xrdMeasurements xmlns="{XRDML_NAMESPACE}"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xsi:schemaLocation="{XRDML_NAMESPACE} {XRDML_NAMESPACE}/XRDMeasurement.xsd"
    status="Completed">
  <comment><entry>Simulated by athanor (Aeris emulator), program {program.name}</entry></comment>
  <sample type="To be analyzed"><id>{sample_id}</id><name>{sample_id}</name></sample>
  <xrdMeasurement measurementType="Scan" status="Completed" sampleMode="Reflection">
    <usedWavelength intended="K-Alpha 1">
      <kAlpha1 unit="Angstrom">{CU_KA1}</kAlpha1>
      <kAlpha2 unit="Angstrom">{CU_KA2}</kAlpha2>
      <ratioKAlpha2KAlpha1>0.5</ratioKAlpha2KAlpha1>
    </usedWavelength>
    <incidentBeamPath>
      <xRayTube name="Cu">
        <tension unit="kV">40</tension><current unit="mA">15</current>
        <anodeMaterial>Cu</anodeMaterial>
      </xRayTube>
    </incidentBeamPath>
    <scan appendNumber="0" mode="Continuous" scanAxis="Gonio" status="Completed">
      <header>
        <startTimeStamp>{start.isoformat()}</startTimeStamp>
        <endTimeStamp>{end.isoformat()}</endTimeStamp>
        <author><name>athanor</name></author>
        <source><applicationSoftware>athanor Aeris emulator</applicationSoftware></source>
      </header>
      <dataPoints>
        <positions axis="2Theta" unit="deg">
          <startPosition>{two_theta[0]:.4f}</startPosition>
          <endPosition>{two_theta[-1]:.4f}</endPosition>
        </positions>
        <positions axis="Omega" unit="deg">
          <startPosition>{two_theta[0] / 2:.4f}</startPosition>
          <endPosition>{two_theta[-1] / 2:.4f}</endPosition>
        </positions>
        <commonCountingTime unit="seconds">{counting_time:.6f}</commonCountingTime>
        <counts unit="counts">{values}</counts>
      </dataPoints>
    </scan>
  </xrdMeasurement>
</xrdMeasurements>
"""
