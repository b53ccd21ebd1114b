"""Driver for a Panalytical Aeris-style diffractometer: ASCII over TCP, patterns as files.

Each request is one TCP connection carrying one ``@ ... @END`` message; the reply's
``KEY=value`` fields carry the answer and ``fatal`` (with ``REASON=`` when the instrument
gives one) marks a refusal. The pattern is written by the instrument as
``<sample_id>.xrdml`` into a shared folder, which :meth:`Aeris.wait_for_pattern` polls in
lab time.
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from athanor.clock import Clock, Deadline
from athanor.drivers.endpoints import tcp_endpoint
from athanor.drivers.errors import ConnectionLost, InstrumentFault, InstrumentTimeout, ProtocolError
from athanor.drivers.xrdml import DiffractionPattern, PatternFileError, read_xrdml

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_MAX_REPLY = 65536


@dataclass(frozen=True)
class AerisStatus:
    """What the instrument says about itself."""

    ready: bool
    system: str


def _check_name(what: str, value: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(
            f"{what} {value!r} is not allowed: use 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit (it becomes a file name and a protocol field)"
        )
    return value


class Aeris:
    """An Aeris-style diffractometer.

    Parameters
    ----------
    url
        ``tcp://HOST:PORT`` of the automation interface (the instrument uses port 702).
    exchange_dir
        The folder the instrument writes ``<sample_id>.xrdml`` into, as seen from here.
    io_timeout
        Wall seconds for connecting and for each reply.
    name
        Named in error messages.
    retries
        Extra attempts for requests that are safe to repeat (status, ADD) after a
        timeout or a lost connection.
    """

    def __init__(
        self,
        url: str,
        exchange_dir: str | Path,
        io_timeout: float = 5.0,
        *,
        name: str = "aeris",
        retries: int = 1,
    ) -> None:
        self.host, self.port = tcp_endpoint(url, "Aeris", io_timeout)
        self.url = url
        self.exchange_dir = Path(exchange_dir)
        self.io_timeout = float(io_timeout)
        self.name = name
        self.retries = retries
        # sample id -> (wall time of MEASURE, the pattern file's stat then, if there was one)
        self._measure_started: dict[str, tuple[float, tuple[int, int] | None]] = {}

    # ------------------------------------------------------------------ wire

    def query(self, message: str, *, retry: bool = False) -> dict[str, str]:
        """Send one message; return the reply's ``KEY=value`` fields.

        Raises InstrumentFault on ``fatal``, InstrumentTimeout, ConnectionLost or
        ProtocolError. With ``retry``, timeouts and lost connections are retried.
        """
        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(attempts):
            try:
                reply = self._exchange(message)
                break
            except (InstrumentTimeout, ConnectionLost):
                if attempt == attempts - 1:
                    raise
        return self._parse(message, reply)

    def _exchange(self, message: str) -> str:
        command = message.split("@END")[0]
        try:
            with socket.create_connection((self.host, self.port), self.io_timeout) as sock:
                sock.settimeout(self.io_timeout)
                sock.sendall(message.encode("ascii"))
                data = b""
                while b"@END" not in data:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                    if len(data) > _MAX_REPLY:
                        raise ProtocolError(
                            f"reply to {command}@END longer than {_MAX_REPLY} bytes without @END",
                            instrument=self.name,
                        )
        except TimeoutError:
            raise InstrumentTimeout(
                f"no reply to {command}@END within {self.io_timeout:g} s", instrument=self.name
            ) from None
        except OSError as exc:
            raise ConnectionLost(
                f"{self.url}: {exc.strerror or exc} during {command}@END", instrument=self.name
            ) from None
        if not data:
            raise ConnectionLost(
                f"{self.url} closed the connection without replying to {command}@END",
                instrument=self.name,
            )
        if b"@END" not in data:
            raise ProtocolError(
                f"incomplete reply to {command}@END (no @END): {data[:200]!r}",
                instrument=self.name,
            )
        try:
            return data.decode("ascii")
        except UnicodeDecodeError:
            raise ProtocolError(
                f"reply is not ASCII: {data[:200]!r}", instrument=self.name
            ) from None

    def _parse(self, message: str, reply: str) -> dict[str, str]:
        body = reply.strip()
        body = body[: body.index("@END")]
        fields = [f for f in body.split("@") if f]
        values = {k: v for k, sep, v in (f.partition("=") for f in fields) if sep}
        if any(f == "fatal" or f.endswith("=fatal") for f in fields):
            command = message.split("@END")[0]
            raise InstrumentFault(
                values.get("REASON", "fatal"),
                instrument=self.name,
                detail=f"reply to {command}@END: {reply.strip()}",
            )
        return values

    def _expect(self, values: dict[str, str], key: str, allowed: tuple[str, ...]) -> str:
        value = values.get(key)
        if value not in allowed:
            raise ProtocolError(
                f"reply has {key}={value!r}; expected one of {allowed}", instrument=self.name
            )
        return value

    # ------------------------------------------------------------------ status

    def status(self) -> AerisStatus:
        """Ready (not measuring) and control mode (``remote`` when automation may drive it)."""
        unit = self.query("@STATUS_REQUEST@UNIT=xrd@END", retry=True)
        system = self.query("@STATUS_REQUEST@SYSTEM@END", retry=True)
        ready = self._expect(unit, "READY", ("yes", "no")) == "yes"
        if "SYSTEM" not in system:
            raise ProtocolError("reply has no SYSTEM= field", instrument=self.name)
        return AerisStatus(ready=ready, system=system["SYSTEM"])

    def is_ready(self) -> bool:
        """True when the instrument is idle (READY=yes)."""
        unit = self.query("@STATUS_REQUEST@UNIT=xrd@END", retry=True)
        return self._expect(unit, "READY", ("yes", "no")) == "yes"

    def slot_state(self, slot: int) -> str:
        """``'free'`` or ``'occupied'``: what the slot's sensor sees."""
        slot = self._check_slot(slot)
        values = self.query(f"@STATUS_REQUEST@LOCATION=0,{slot}@END", retry=True)
        return self._expect(values, "STATE", ("free", "occupied"))

    @staticmethod
    def _check_slot(slot: int) -> int:
        if isinstance(slot, bool) or not isinstance(slot, int) or slot < 1:
            raise ValueError(f"slot {slot!r} is not allowed: use a slot number >= 1")
        return slot

    # ------------------------------------------------------------------ samples

    def add(self, sample_id: str, slot: int, program: str) -> None:
        """Register ``sample_id`` at ``slot`` with its default ``program``.

        Repeating it for a sample already at that slot is not an error.
        """
        _check_name("sample_id", sample_id)
        _check_name("program", program)
        slot = self._check_slot(slot)
        self.query(
            f"@SAMPLE@ADD@APPLICATION={program}@SAMPLE_ID={sample_id}@AT=0,{slot}@END",
            retry=True,
        )

    def measure(self, sample_id: str, program: str) -> None:
        """Start measuring ``sample_id`` with ``program``; returns when the scan started.

        Not retried: a lost reply may mean the scan runs. Then wait with
        :meth:`wait_for_pattern`.
        """
        _check_name("sample_id", sample_id)
        _check_name("program", program)
        started, before = time.time(), _signature(self.pattern_path(sample_id))
        self.query(f"@SAMPLE@MEASURE@SAMPLE_ID={sample_id}@APPLICATION={program}@END")
        self._measure_started[sample_id] = (started, before)

    def remove(self, sample_id: str) -> None:
        """Unregister ``sample_id`` (after it was taken out). Fatal if it is not there."""
        _check_name("sample_id", sample_id)
        self.query(f"@SAMPLE@REMOVE@SAMPLE_ID={sample_id}@END")

    def move(self, sample_id: str, from_slot: int, to_slot: int) -> None:
        """Move the sample at ``from_slot`` to ``to_slot``."""
        _check_name("sample_id", sample_id)
        source, target = self._check_slot(from_slot), self._check_slot(to_slot)
        self.query(f"@SAMPLE@MOVE@SAMPLE_ID={sample_id}@AT=0,{source}@TO=0,{target}@END")

    # ------------------------------------------------------------------ patterns

    def pattern_path(self, sample_id: str) -> Path:
        """Where the instrument writes the pattern of ``sample_id``."""
        return self.exchange_dir / f"{_check_name('sample_id', sample_id)}.xrdml"

    def wait_for_pattern(
        self,
        sample_id: str,
        timeout_lab_s: float,
        clock: Clock,
        poll_lab_s: float = 5.0,
    ) -> DiffractionPattern:
        """Wait for ``<sample_id>.xrdml`` and read it.

        A file older than the :meth:`measure` call of this driver, or the very file that
        was there when it was called, is a stale one from an earlier scan and is ignored.
        A file that does not parse is re-read while it changes (the instrument may still
        be writing it).

        Raises
        ------
        InstrumentTimeout
            No usable file within ``timeout_lab_s`` lab seconds.
        PatternFileError
            The file stopped changing and is still truncated or malformed.
        """
        path = self.pattern_path(sample_id)
        started, stale = self._measure_started.get(sample_id, (0.0, None))
        not_before = started - 1.0  # the instrument's clock may be a little behind ours
        deadline = Deadline(clock, timeout_lab_s)
        last_error: PatternFileError | None = None
        last_stat: tuple[int, int] | None = None
        while True:
            try:
                stat = path.stat()
            except FileNotFoundError:
                stat = None
            signature = None if stat is None else (stat.st_size, stat.st_mtime_ns)
            if stat is not None and stat.st_mtime >= not_before and signature != stale:
                try:
                    return read_xrdml(path)
                except PatternFileError as exc:
                    if last_error is not None and signature == last_stat:
                        raise
                    last_error, last_stat = exc, signature
            if deadline.expired:
                if last_error is not None:
                    raise last_error
                raise InstrumentTimeout(
                    f"no pattern {path} within {timeout_lab_s:g} lab s", instrument=self.name
                )
            clock.sleep(min(poll_lab_s, deadline.remaining))


def _signature(path: Path) -> tuple[int, int] | None:
    """(size, mtime) of a file, None when there is none: tells a new file from an old one."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns
