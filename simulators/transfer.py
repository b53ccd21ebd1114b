"""A simulated sample-handling robot with a dosing station, on a line-based TCP protocol.

Protocol (ASCII over TCP, many requests per connection). A request is one line ending in
LF (CR LF accepted); words are separated by single spaces. Every request gets exactly one
reply line ending in LF::

    IDN                                   OK athanor simulated transfer robot v1
    STATUS                                OK STATE=idle TASK=- SAMPLE=- RESULT=- REMAINING=0
    PREPARE <id> [ba_ti_ratio=<r>] [dopant=<x>] [at=<location>]
                                          OK PREPARING <id> ETA=<lab s>
    MOVE <id> <from> <to>                 OK MOVING <id> ETA=<lab s>
                                          OK AT <id> <to>        (already there: no motion)
    WHERE <id>                            OK <id> <location>
    RESET                                 OK RESET               (clears a gripper fault)

``PREPARE`` weighs BaCO3, TiO2 and dopant for the composition (default ratio 1, x 0)
and leaves the sample at ``at`` (default ``rack``); ``MOVE`` picks the sample up (it is
at ``transfer`` while carried) and puts it down. Both run in the background for a set lab
time; poll ``STATUS``: ``STATE`` is ``idle``, ``busy`` or ``fault``; ``TASK`` and
``SAMPLE`` name the current or last task, ``RESULT`` how the last one ended (``done``,
``dropped``, ``gripper_fault``, ``refused``) and ``REMAINING`` the lab seconds left.
A dropped sample is at ``lost``; a gripper fault leaves the sample where it was and the
robot in ``STATE=fault FAULT=gripper_fault`` until ``RESET``.

Refusals are ``ERR <code> <reason>``; a request that arrives while a task runs gets
``BUSY`` (nothing was done; send it again later):

    ====  ==============================================================
    10    unknown command
    11    bad argument (missing, malformed or out of range)
    20    unknown sample                21  sample exists
    22    not at source                 23  unknown location
    24    location occupied             25  sample lost
    30    too hot (a furnace above the handling temperature is not opened)
    40    gripper fault; send RESET
    ====  ==============================================================

Faults (``TransferSimSettings.faults``, switchable at run time): ``no_reply`` (requests
are read and never answered), ``busy`` (every PREPARE and MOVE answered ``BUSY``),
``gripper_fault`` and ``dropped_sample`` (every move ends that way), ``drop_connection``
(the connection is closed on the next request), ``lose_replies`` (per command, how many
of its next replies are lost: the request is carried out, then the connection is closed
without a reply, e.g. ``{MOVE: 1}``). ``drop_probability`` and
``gripper_fault_probability`` make moves fail at random (seeded).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, NonNegativeInt

from athanor.clock import Clock
from athanor.schema import StrictModel
from athanor.simulators.hosting import count_down
from athanor.simulators.materials import Composition
from athanor.simulators.samples import GRIPPER, RACK, MoveRefused, SampleRegistry

IDENTITY = "athanor simulated transfer robot v1"
ERROR_CODES = {
    "unknown_command": 10,
    "bad_argument": 11,
    "bad_name": 11,
    "unknown_sample": 20,
    "sample_exists": 21,
    "not_at_source": 22,
    "unknown_location": 23,
    "occupied": 24,
    "lost": 25,
    "hot": 30,
    "gripper_fault": 40,
}
_RECIPE_KEYS = {"ba_ti_ratio", "dopant"}


class TransferFaults(StrictModel):
    """Fault switches; each can be flipped while the emulator runs."""

    no_reply: bool = False
    busy: bool = False
    gripper_fault: bool = False
    dropped_sample: bool = False
    drop_connection: bool = False
    lose_replies: dict[
        Literal["IDN", "STATUS", "WHERE", "PREPARE", "MOVE", "RESET"], NonNegativeInt
    ] = Field(default_factory=dict, description="command -> how many next replies to lose")


class TransferSimSettings(StrictModel):
    """The robot emulator's settings: a lab YAML's ``instruments.<name>.sim`` block."""

    move_time_s: float = Field(30.0, ge=0, le=3600, description="lab seconds per move")
    prepare_time_s: float = Field(600.0, ge=0, le=86400, description="lab seconds to dose")
    drop_probability: float = Field(0.0, ge=0, le=1, description="chance a move drops it")
    gripper_fault_probability: float = Field(0.0, ge=0, le=1)
    seed: int = 0
    faults: TransferFaults = Field(default_factory=TransferFaults)

    @classmethod
    def from_lab(cls, lab: Any, name: str) -> TransferSimSettings:
        """Validate ``instruments.<name>.sim`` of a loaded lab (errors name file and line)."""
        loc = ("instruments", name, "sim")
        if lab.source is None:
            return cls.model_validate(lab.instruments[name].sim)
        return lab.source.validate(cls, loc, f"instruments.{name}.sim")


class _Refused(Exception):
    def __init__(self, kind: str, reason: str) -> None:
        self.kind, self.reason = kind, reason


class TransferEmulator:
    """The robot as a TCP server driving a :class:`SampleRegistry`.

    Parameters
    ----------
    registry
        The lab's samples; the robot creates and moves them.
    clock
        Lab clock: moves and dosing take lab time.
    settings
        Times, failure chances, faults (defaults: 30 s moves, 600 s dosing, no faults).
    connection
        ``tcp://HOST:PORT`` to listen on (the lab config's ``connection``); port 0 picks a
        free port (:meth:`start` returns the real one).
    """

    def __init__(
        self,
        registry: SampleRegistry,
        clock: Clock,
        settings: TransferSimSettings | None = None,
        *,
        connection: str = "tcp://127.0.0.1:0",
        name: str = "robot",
    ) -> None:
        parts = urlsplit(connection)
        if parts.scheme != "tcp" or not parts.hostname:
            raise ValueError(f"{name}: connection {connection!r} must be tcp://HOST:PORT")
        self.host, self.port = parts.hostname, parts.port or 0
        self.name = name
        self.registry = registry
        self.clock = clock
        self.settings = settings or TransferSimSettings()
        self._rng = random.Random(self.settings.seed)
        self._server: asyncio.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._state = "idle"
        self._fault = ""
        self._current = ("-", "-", "-")  # task, sample, result
        self._ends_at = 0.0

    @property
    def faults(self) -> TransferFaults:
        return self.settings.faults

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        port = self._server.sockets[0].getsockname()[1]
        return f"tcp://{self.host}:{port}"

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    # ---- connection

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                if self.faults.drop_connection:
                    writer.transport.abort()
                    return
                if self.faults.no_reply:
                    continue
                request = line.decode("ascii", errors="replace").strip()
                reply = self.handle(request)
                if self._lose_reply(request):
                    writer.transport.abort()  # carried out, but the reply never arrives
                    return
                writer.write(reply.encode("ascii", errors="replace") + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    def _lose_reply(self, request: str) -> bool:
        """Whether the reply to ``request`` is one to lose (``faults.lose_replies``)."""
        command = request.split(maxsplit=1)[0].upper() if request else ""
        return count_down(self.faults.lose_replies, command)

    def handle(self, request: str) -> str:
        """The reply line (without LF) to one request line."""
        words = request.split()
        if not words:
            return "ERR 10 empty request"
        command, args = words[0].upper(), words[1:]
        handler = {
            "IDN": self._idn,
            "STATUS": self._status,
            "WHERE": self._where,
            "PREPARE": self._prepare,
            "MOVE": self._move,
            "RESET": self._reset,
        }.get(command)
        if handler is None:
            return f"ERR 10 unknown command {words[0]}"
        try:
            return handler(args)
        except _Refused as refused:
            return f"ERR {ERROR_CODES[refused.kind]} {refused.reason}"
        except MoveRefused as refused:
            return f"ERR {ERROR_CODES[refused.kind]} {refused}"

    # ---- commands

    def _idn(self, args: list[str]) -> str:
        return f"OK {IDENTITY}"

    def _status(self, args: list[str]) -> str:
        task, sample, result = self._current
        remaining = max(0.0, self._ends_at - self.clock.now()) if self._state == "busy" else 0.0
        fault = f" FAULT={self._fault}" if self._state == "fault" else ""
        return (
            f"OK STATE={self._state}{fault} TASK={task} SAMPLE={sample} RESULT={result} "
            f"REMAINING={remaining:.0f}"
        )

    def _where(self, args: list[str]) -> str:
        (sample_id,) = _expect(args, "WHERE <id>")
        try:
            return f"OK {sample_id} {self.registry.location(sample_id)}"
        except KeyError:
            raise _Refused("unknown_sample", f"unknown sample {sample_id}") from None

    def _reset(self, args: list[str]) -> str:
        if self._state == "fault":
            self._state, self._fault = "idle", ""
        return "OK RESET"

    def _ready(self) -> str | None:
        if self._state == "fault":
            raise _Refused("gripper_fault", "gripper fault; send RESET")
        if self._state == "busy" or self.faults.busy:
            return "BUSY"
        return None

    def _prepare(self, args: list[str]) -> str:
        if not args:
            raise _Refused("bad_argument", "usage: PREPARE <id> [ba_ti_ratio=R] [dopant=X] [at=L]")
        sample_id, options = args[0], _options(args[1:])
        location = options.pop("at", RACK)
        unknown = sorted(set(options) - _RECIPE_KEYS)
        if unknown:
            raise _Refused(
                "bad_argument",
                f"unknown recipe key {unknown[0]}; allowed: {', '.join(sorted(_RECIPE_KEYS))}, at",
            )
        try:
            composition = Composition(**{k: _number(k, v) for k, v in options.items()})
        except ValueError as exc:
            raise _Refused("bad_argument", str(exc)) from None
        self.registry.check_create(sample_id, location)
        busy = self._ready()
        if busy:
            return busy
        self._begin("prepare", sample_id, self.settings.prepare_time_s)
        self._task = asyncio.get_running_loop().create_task(
            self._run_prepare(sample_id, composition, location)
        )
        return f"OK PREPARING {sample_id} ETA={self.settings.prepare_time_s:g}"

    def _move(self, args: list[str]) -> str:
        sample_id, source, dest = _expect(args, "MOVE <id> <from> <to>")
        if sample_id in self.registry and self.registry.location(sample_id) == dest:
            return f"OK AT {sample_id} {dest}"
        busy = self._ready()
        if busy:
            return busy
        self.registry.check_move(sample_id, source, dest)
        self._begin("move", sample_id, self.settings.move_time_s)
        self._task = asyncio.get_running_loop().create_task(self._run_move(sample_id, dest))
        return f"OK MOVING {sample_id} ETA={self.settings.move_time_s:g}"

    # ---- background tasks

    def _begin(self, task: str, sample_id: str, seconds: float) -> None:
        self._state = "busy"
        self._current = (task, sample_id, "-")
        self._ends_at = self.clock.now() + seconds

    def _finish(self, result: str, state: str = "idle") -> None:
        task, sample_id, _ = self._current
        self._current = (task, sample_id, result)
        self._state = state
        if state == "fault":
            self._fault = result

    async def _run_prepare(self, sample_id: str, composition: Composition, location: str) -> None:
        await self.clock.asleep(self.settings.prepare_time_s)
        try:
            self.registry.create(sample_id, composition, location)
        except MoveRefused:
            self._finish("refused")
            return
        self._finish("done")

    async def _run_move(self, sample_id: str, dest: str) -> None:
        settings = self.settings
        if self.faults.gripper_fault or self._rng.random() < settings.gripper_fault_probability:
            await self.clock.asleep(settings.move_time_s / 4)
            self._finish("gripper_fault", "fault")
            return
        source = self.registry.location(sample_id)
        try:
            self.registry.move(sample_id, GRIPPER)
        except MoveRefused:
            self._finish("refused")
            return
        dropped = self.faults.dropped_sample or self._rng.random() < settings.drop_probability
        if dropped:
            await self.clock.asleep(settings.move_time_s / 2)
            self.registry.mark_lost(sample_id, f"dropped by {self.name} on the way to {dest}")
            self._finish("dropped")
            return
        await self.clock.asleep(settings.move_time_s)
        try:
            self.registry.move(sample_id, dest)
        except MoveRefused:
            self.registry.move(sample_id, source)  # put it back where it came from
            self._finish("refused")
            return
        self._finish("done")


def _expect(args: list[str], usage: str) -> list[str]:
    if len(args) != usage.count("<"):
        raise _Refused("bad_argument", f"usage: {usage}")
    return args


def _options(words: list[str]) -> dict[str, str]:
    options = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key or not value:
            raise _Refused("bad_argument", f"{word} is not key=value")
        options[key] = value
    return options


def _number(key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _Refused("bad_argument", f"{key}={text} is not a number") from None
    if not math.isfinite(value):
        raise _Refused("bad_argument", f"{key}={text} is not a finite number")
    return value
