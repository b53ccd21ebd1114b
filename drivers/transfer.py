"""Sample transfer: a robot on a line-based TCP protocol, or an operator asked to do it.

:class:`TransferRobot` speaks the protocol documented in
:mod:`athanor.simulators.transfer` (one ASCII line per request and per reply: ``OK ...``,
``ERR <code> <reason>``, ``BUSY``). :class:`ManualTransfer` has the same methods and asks
a person instead. Both are safe to repeat: moving a sample to where it already is succeeds
without motion, and every wait is bounded in lab time. The robot's methods are also safe
after a lost reply (the robot acted, its answer never came): reads and RESET are sent
again; PREPARE and MOVE only when STATUS shows the robot did not take them, and a refusal
of the repeat is success when WHERE finds the sample at its target.
"""

from __future__ import annotations

import math
import re
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from athanor.clock import Clock, Deadline, WallClock
from athanor.drivers.endpoints import tcp_endpoint
from athanor.drivers.errors import ConnectionLost, InstrumentFault, InstrumentTimeout, ProtocolError

_TOKEN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_MAX_LINE = 4096
LOST = "lost"
GRIPPER = "transfer"


@dataclass(frozen=True)
class TransferStatus:
    """The robot's state: ``idle``, ``busy`` or ``fault``, and its current or last task."""

    state: str
    task: str = "-"
    sample: str = "-"
    result: str = "-"
    remaining_s: float = 0.0
    fault: str = ""


def _token(what: str, value: str) -> str:
    if not isinstance(value, str) or not _TOKEN.match(value):
        raise ValueError(
            f"{what} {value!r} is not allowed: use 1-64 letters, digits and '_', '.', ':', '-'"
        )
    return value


def _recipe_words(recipe: Mapping[str, float]) -> list[str]:
    words = []
    for key, value in recipe.items():
        _token("recipe key", key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"recipe {key} = {value!r} is not allowed: it must be a number")
        if not math.isfinite(value):
            raise ValueError(f"recipe {key} = {value!r} is not allowed: it must be finite")
        words.append(f"{key}={value:.6g}")
    return words


_RESULTS = {"dropped": "sample dropped", "gripper_fault": "gripper fault", "refused": "refused"}


class _Busy(Exception):
    pass


class TransferRobot:
    """A sample-handling robot with a dosing station.

    Parameters
    ----------
    url
        ``tcp://HOST:PORT`` of the robot controller.
    io_timeout
        Wall seconds for connecting and for each reply.
    clock
        Lab clock for waits (moves, dosing); wall time unless given.
    poll_s
        Lab seconds between status polls while a task runs.
    name
        Named in error messages.
    """

    def __init__(
        self,
        url: str,
        io_timeout: float = 1.0,
        *,
        clock: Clock | None = None,
        poll_s: float = 2.0,
        name: str = "transfer",
    ) -> None:
        self.host, self.port = tcp_endpoint(url, "transfer robot", io_timeout)
        self.url = url
        self.io_timeout = float(io_timeout)
        self.clock = clock or WallClock()
        self.poll_s = poll_s
        self.name = name
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._lock = threading.Lock()

    # ---- public API

    def identify(self) -> str:
        return self._request("IDN", retry=True)

    def status(self) -> TransferStatus:
        fields = dict(
            word.split("=", 1)
            for word in self._request("STATUS", retry=True).split()
            if "=" in word
        )
        try:
            return TransferStatus(
                state=fields["STATE"],
                task=fields.get("TASK", "-"),
                sample=fields.get("SAMPLE", "-"),
                result=fields.get("RESULT", "-"),
                remaining_s=float(fields.get("REMAINING", 0)),
                fault=fields.get("FAULT", ""),
            )
        except (KeyError, ValueError):
            raise ProtocolError(f"malformed STATUS reply {fields}", instrument=self.name) from None

    def where(self, sample_id: str) -> str:
        """The sample's location (``lost`` if it was dropped)."""
        _token("sample id", sample_id)
        words = self._request(f"WHERE {sample_id}", retry=True).split()
        if len(words) != 2 or words[0] != sample_id:
            raise ProtocolError(f"unexpected WHERE reply {words}", instrument=self.name)
        return words[1]

    def reset(self) -> None:
        """Clear a gripper fault."""
        self._request("RESET", retry=True)

    def prepare(
        self,
        sample_id: str,
        recipe: Mapping[str, float],
        location: str = "rack",
        timeout_lab_s: float = 3600.0,
        clock: Clock | None = None,
    ) -> None:
        """Dose a sample for ``recipe`` (e.g. ``ba_ti_ratio``, ``dopant``) and wait for it.

        A sample that already exists at ``location`` counts as prepared; one the robot is
        preparing now (an earlier call's) is waited for.
        """
        _token("sample id", sample_id)
        _token("location", location)
        words = _recipe_words(recipe)
        clock = clock or self.clock
        deadline = Deadline(clock, timeout_lab_s)
        if self._existing(sample_id) == location:
            return
        request = " ".join(["PREPARE", sample_id, *words, f"at={location}"])
        if not self._took("prepare", sample_id) and not self._submit(
            request, "prepare", sample_id, location, deadline
        ):
            return
        self._wait_task("prepare", sample_id, deadline, clock)
        self._arrived(sample_id, location, "prepare")

    def move(
        self,
        sample_id: str,
        source: str,
        dest: str,
        timeout_lab_s: float = 600.0,
        clock: Clock | None = None,
    ) -> None:
        """Move a sample from ``source`` to ``dest`` and wait until it is there.

        Raises :class:`InstrumentFault` if the robot refuses (e.g. a hot furnace), drops
        the sample or faults, :class:`InstrumentTimeout` if not done in ``timeout_lab_s``.
        """
        for what, value in (("sample id", sample_id), ("source", source), ("dest", dest)):
            _token(what, value)
        clock = clock or self.clock
        deadline = Deadline(clock, timeout_lab_s)
        here = self.where(sample_id)
        if here == dest:
            return
        if here == LOST:
            raise InstrumentFault("sample lost", detail=sample_id, instrument=self.name)
        if here != GRIPPER and not self._submit(  # not already carried by a request of ours
            f"MOVE {sample_id} {source} {dest}", "move", sample_id, dest, deadline
        ):
            return
        self._wait_task("move", sample_id, deadline, clock)
        self._arrived(sample_id, dest, "move")

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> TransferRobot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- tasks

    def _existing(self, sample_id: str) -> str | None:
        try:
            return self.where(sample_id)
        except InstrumentFault as fault:
            if fault.detail == "ERR 20":
                return None
            raise

    def _took(self, task: str, sample_id: str) -> bool:
        """Whether the robot runs (or faulted in) ``task`` of ``sample_id`` now."""
        status = self.status()
        return status.state != "idle" and (status.task, status.sample) == (task, sample_id)

    def _submit(
        self, request: str, task: str, sample_id: str, target: str, deadline: Deadline
    ) -> bool:
        """Send a PREPARE/MOVE until the robot takes it; False: the sample is at ``target``.

        On BUSY nothing happened, so it is sent again until the deadline. After a lost
        reply it is sent once more unless STATUS shows the robot took it; a refusal of
        that second one is success when the sample is at ``target`` (the first finished).
        """
        lost = False
        while True:
            try:
                return not self._request(request, retry=False).startswith("AT ")
            except _Busy:
                if deadline.expired:
                    raise InstrumentTimeout(
                        f"still busy after {deadline.timeout:g} lab s; {request!r} not sent",
                        instrument=self.name,
                    ) from None
                deadline.clock.sleep(min(self.poll_s, deadline.remaining))
            except (InstrumentTimeout, ConnectionLost):
                if lost:
                    raise
                lost = True
                if self._took(task, sample_id):
                    return True
            except InstrumentFault:
                if lost and self._existing(sample_id) == target:
                    return False
                raise

    def _wait_task(self, task: str, sample_id: str, deadline: Deadline, clock: Clock) -> None:
        while True:
            status = self.status()
            if status.state == "fault":
                raise InstrumentFault(
                    status.fault.replace("_", " ") or "fault",
                    detail=f"{task} {sample_id}",
                    instrument=self.name,
                )
            if not (status.state == "busy" and status.sample == sample_id):
                if status.sample == sample_id and status.result not in ("done", "-"):
                    raise InstrumentFault(
                        _RESULTS.get(status.result, f"{task} {status.result}"),
                        detail=f"{task} {sample_id}",
                        instrument=self.name,
                    )
                return
            if deadline.expired:
                raise InstrumentTimeout(
                    f"{task} of {sample_id} not done within {deadline.timeout:g} lab s",
                    instrument=self.name,
                )
            clock.sleep(
                min(self.poll_s, max(status.remaining_s, 0.0) or self.poll_s, deadline.remaining)
            )

    def _arrived(self, sample_id: str, dest: str, task: str) -> None:
        here = self.where(sample_id)
        if here == LOST:
            raise InstrumentFault(
                "sample dropped", detail=f"{task} {sample_id}", instrument=self.name
            )
        if here != dest:
            raise InstrumentFault(
                f"{task} did not complete",
                detail=f"{sample_id} is at {here}, not {dest}",
                instrument=self.name,
            )

    # ---- wire

    def _request(self, line: str, *, retry: bool) -> str:
        """Send one line; return what follows ``OK``. Reads are retried once on a lost link."""
        attempts = 2 if retry else 1
        for attempt in range(attempts):
            try:
                with self._lock:
                    return self._exchange(line)
            except (InstrumentTimeout, ConnectionLost):
                if attempt + 1 == attempts:
                    raise
        raise AssertionError("unreachable")

    def _exchange(self, line: str) -> str:
        sock = self._connect()
        try:
            sock.sendall(line.encode("ascii") + b"\n")
            reply = self._readline(sock)
        except TimeoutError:
            self._drop()
            raise InstrumentTimeout(
                f"no reply to {line.split()[0]} within {self.io_timeout:g} s", instrument=self.name
            ) from None
        except OSError as exc:
            self._drop()
            raise ConnectionLost(
                f"connection to {self.url} lost ({exc})", instrument=self.name
            ) from None
        if reply == "BUSY":
            raise _Busy
        if reply == "OK" or reply.startswith("OK "):
            return reply[3:]
        match = re.match(r"^ERR (\d+) (.+)$", reply)
        if match:
            raise InstrumentFault(match[2], detail=f"ERR {match[1]}", instrument=self.name)
        self._drop()
        raise ProtocolError(f"unexpected reply {reply!r} to {line!r}", instrument=self.name)

    def _connect(self) -> socket.socket:
        if self._sock is None:
            try:
                self._sock = socket.create_connection((self.host, self.port), self.io_timeout)
            except OSError as exc:
                raise ConnectionLost(
                    f"cannot connect to {self.url} ({exc})", instrument=self.name
                ) from None
            self._sock.settimeout(self.io_timeout)
            self._buffer = b""
        return self._sock

    def _readline(self, sock: socket.socket) -> str:
        while b"\n" not in self._buffer:
            chunk = sock.recv(1024)
            if not chunk:
                raise ConnectionResetError("closed by the robot")
            self._buffer += chunk
            if len(self._buffer) > _MAX_LINE:
                self._drop()
                raise ProtocolError("reply longer than 4096 bytes", instrument=self.name)
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            return line.decode("ascii").rstrip("\r")
        except UnicodeDecodeError:
            self._drop()
            raise ProtocolError(f"reply is not ASCII: {line!r}", instrument=self.name) from None

    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._buffer = b""


Prompt = Callable[[str], str]
_YES = {"", "y", "yes", "ok", "done"}


def console_prompt(message: str) -> str:
    """Ask on the terminal (rich); the operator types Enter when done, or 'no'."""
    from rich.console import Console

    return Console().input(f"[bold yellow]{message}[/] [Enter = done, 'no' = failed] ")


class ManualTransfer:
    """Transfer by hand: asks the operator and waits for the confirmation.

    Parameters
    ----------
    prompt
        Shows a message and returns the operator's answer: empty, ``y``, ``yes``, ``ok``
        or ``done`` confirm, anything else reports a failure. Defaults to a console prompt.
    clock
        Lab clock for the confirmation timeout; wall time unless given.
    """

    def __init__(
        self, prompt: Prompt | None = None, *, clock: Clock | None = None, name: str = "manual"
    ) -> None:
        self.prompt = prompt or console_prompt
        self.clock = clock or WallClock()
        self.name = name
        self._where: dict[str, str] = {}
        self._busy = ""

    def identify(self) -> str:
        return "manual transfer (operator)"

    def status(self) -> TransferStatus:
        if self._busy:
            task, sample = self._busy.split(" ", 1)
            return TransferStatus(state="busy", task=task, sample=sample)
        return TransferStatus(state="idle")

    def where(self, sample_id: str) -> str:
        _token("sample id", sample_id)
        try:
            return self._where[sample_id]
        except KeyError:
            raise InstrumentFault(
                "unknown sample", detail=sample_id, instrument=self.name
            ) from None

    def reset(self) -> None:
        """Nothing to reset: the operator is the gripper."""

    def prepare(
        self,
        sample_id: str,
        recipe: Mapping[str, float],
        location: str = "rack",
        timeout_lab_s: float = 3600.0,
        clock: Clock | None = None,
    ) -> None:
        _token("sample id", sample_id)
        _token("location", location)
        words = " ".join(_recipe_words(recipe))
        if self._where.get(sample_id) == location:
            return
        self._ask(
            "prepare",
            sample_id,
            f"Prepare sample {sample_id} ({words or 'default recipe'}) and put it at {location}.",
            timeout_lab_s,
            clock,
        )
        self._where[sample_id] = location

    def move(
        self,
        sample_id: str,
        source: str,
        dest: str,
        timeout_lab_s: float = 3600.0,
        clock: Clock | None = None,
    ) -> None:
        for what, value in (("sample id", sample_id), ("source", source), ("dest", dest)):
            _token(what, value)
        if self._where.get(sample_id) == dest:
            return
        self._ask(
            "move",
            sample_id,
            f"Move sample {sample_id} from {source} to {dest}.",
            timeout_lab_s,
            clock,
        )
        self._where[sample_id] = dest

    def close(self) -> None:
        """Nothing to close."""

    def _ask(
        self, task: str, sample_id: str, message: str, timeout: float, clock: Clock | None
    ) -> None:
        deadline = Deadline(clock or self.clock, timeout)
        answer: Future[str] = Future()

        def ask() -> None:
            try:
                answer.set_result(self.prompt(message))
            except BaseException as exc:  # handed to the waiting thread
                answer.set_exception(exc)

        self._busy = f"{task} {sample_id}"
        # A daemon thread: an operator who never answers must not keep the process alive.
        threading.Thread(target=ask, name=f"{self.name}-prompt", daemon=True).start()
        try:
            while True:
                try:
                    text = answer.result(timeout=min(0.05, max(deadline.wall_remaining(), 1e-3)))
                    break
                except FutureTimeout:
                    if deadline.expired:
                        raise InstrumentTimeout(
                            f"no confirmation of {task} {sample_id} within {timeout:g} lab s",
                            instrument=self.name,
                        ) from None
                except (EOFError, KeyboardInterrupt, OSError) as exc:
                    raise InstrumentFault(
                        "no operator answer", detail=repr(exc), instrument=self.name
                    ) from None
        finally:
            self._busy = ""
        if text.strip().lower() not in _YES:
            raise InstrumentFault(
                f"operator reported the {task} failed", detail=text.strip(), instrument=self.name
            )
