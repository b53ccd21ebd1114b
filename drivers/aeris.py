"""Driver for a Panalytical Aeris-style diffractometer: ASCII over TCP, patterns as files.

Each request is one TCP connection carrying one ``@ ... @END`` message; the reply's
``KEY=value`` fields carry the answer and ``fatal`` (with ``REASON=`` when the instrument
gives one) marks a refusal. The pattern is written by the instrument as
``<sample_id>.xrdml`` into a shared folder, which :meth:`Aeris.wait_for_pattern` polls in
lab time.

Every method is safe to repeat, also when a reply was lost after the instrument acted:
what "already done" looks like is checked on the wire, per method (see each docstring).
A pattern is checked against the 2θ range its program's name encodes
(:func:`program_range`); a program named otherwise is not range-checked.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from athanor.clock import Clock, Deadline
from athanor.drivers.endpoints import tcp_endpoint
from athanor.drivers.errors import ConnectionLost, InstrumentFault, InstrumentTimeout, ProtocolError
from athanor.drivers.xrdml import DiffractionPattern, PatternFileError, read_xrdml

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_RANGE = re.compile(r"^(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)_")
_MAX_REPLY = 65536
RANGE_TOLERANCE = 0.1  # degrees 2θ between a pattern's ends and its program's range


@dataclass(frozen=True)
class AerisStatus:
    """What the instrument says about itself."""

    ready: bool
    system: str


class PatternRangeError(PatternFileError):
    """A pattern whose 2θ range is not its program's: a stale or wrong file.

    ``sample_id``, ``program``, ``expected`` and ``found`` (2θ start and end, degrees)
    say which.
    """

    def __init__(
        self,
        path: Path,
        sample_id: str,
        program: str,
        expected: tuple[float, float],
        found: tuple[float, float],
    ) -> None:
        self.sample_id, self.program = sample_id, program
        self.expected, self.found = expected, found
        super().__init__(
            path,
            f"sample {sample_id}: the pattern runs 2θ {found[0]:g}–{found[1]:g}°, but program "
            f"{program} scans {expected[0]:g}–{expected[1]:g}°; a stale or wrong file",
        )


@dataclass(frozen=True)
class _Scan:
    """A MEASURE this driver sent: wall time, the pattern file's signature then, program."""

    started: float
    stale: tuple[int, int] | None
    program: str | None


def program_range(program: str) -> tuple[float, float] | None:
    """The 2θ range (degrees) a program name encodes: ``10-100_8-minutes`` → (10, 100).

    None for a name that does not start with ``START-END_`` (a site's own name such as
    ``phase-id-fast``): its range is unknown here.
    """
    match = _RANGE.match(program)
    return (float(match[1]), float(match[2])) if match else None


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
        Extra attempts after a timeout or a lost connection. MEASURE is sent again only
        when the instrument shows that the first one did not start a scan.
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
        self._scans: dict[str, _Scan] = {}  # MEASUREs whose pattern is not collected yet
        self._slots: dict[str, int] = {}  # where this driver last put each sample

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

    def _command(self, message: str, already_done: Callable[[InstrumentFault], bool]) -> None:
        """Send a SAMPLE command that is harmless to send twice, again after a lost reply.

        A refusal is success when ``already_done(fault)`` finds on the wire that the
        instrument did it before (the first attempt, or an earlier call).
        """
        try:
            self.query(message, retry=True)
        except InstrumentFault as fault:
            if not already_done(fault):
                raise

    def add(self, sample_id: str, slot: int, program: str) -> None:
        """Register ``sample_id`` at ``slot`` with its default ``program``.

        Safe to repeat: an instrument that refuses a repeat because it already has the
        sample (a reason saying "already", e.g. "already known") is taken at its word
        when LOCATION shows ``slot`` occupied.
        """
        _check_name("sample_id", sample_id)
        _check_name("program", program)
        slot = self._check_slot(slot)
        self._command(
            f"@SAMPLE@ADD@APPLICATION={program}@SAMPLE_ID={sample_id}@AT=0,{slot}@END",
            lambda fault: "already" in fault.reason.lower() and self.slot_state(slot) == "occupied",
        )
        self._slots[sample_id] = slot

    def measure(self, sample_id: str, program: str) -> None:
        """Start measuring ``sample_id`` with ``program``; returns when the scan started.

        Never starts a second scan for one request: after a lost reply MEASURE is sent
        again only if the instrument is ready and no new pattern file appeared. A repeat
        while this driver's last scan of the sample runs, or wrote a pattern that
        :meth:`wait_for_pattern` has not collected yet, does nothing. Then wait with
        :meth:`wait_for_pattern`.
        """
        _check_name("sample_id", sample_id)
        _check_name("program", program)
        path = self.pattern_path(sample_id)
        scan = self._scans.get(sample_id)
        if scan is not None and self._scan_began(path, scan):
            return
        scan = self._scans[sample_id] = _Scan(time.time(), _signature(path), program)
        message = f"@SAMPLE@MEASURE@SAMPLE_ID={sample_id}@APPLICATION={program}@END"
        for attempt in range(1 + self.retries):
            try:
                self.query(message)
                return
            except InstrumentFault:
                if attempt == 0:
                    del self._scans[sample_id]  # refused outright: no scan of ours
                raise
            except (InstrumentTimeout, ConnectionLost):
                if self._scan_began(path, scan):
                    return
                if attempt == self.retries:
                    raise

    def remove(self, sample_id: str) -> None:
        """Unregister ``sample_id`` (after its scan, before it is taken out).

        Safe to repeat: a refusal is success when the slot this driver put the sample at
        (:meth:`add`, :meth:`move`) reads free. Otherwise (a sample this driver did not
        place, one being measured) a refusal is an InstrumentFault.
        """
        _check_name("sample_id", sample_id)
        slot = self._slots.get(sample_id)
        self._command(
            f"@SAMPLE@REMOVE@SAMPLE_ID={sample_id}@END",
            lambda fault: slot is not None and self.slot_state(slot) == "free",
        )

    def move(self, sample_id: str, from_slot: int, to_slot: int) -> None:
        """Move the sample at ``from_slot`` to ``to_slot``.

        Safe to repeat: a refusal is success when LOCATION shows ``to_slot`` occupied
        and ``from_slot`` free.
        """
        _check_name("sample_id", sample_id)
        source, target = self._check_slot(from_slot), self._check_slot(to_slot)
        self._command(
            f"@SAMPLE@MOVE@SAMPLE_ID={sample_id}@AT=0,{source}@TO=0,{target}@END",
            lambda fault: (
                self.slot_state(target) == "occupied"
                and (source == target or self.slot_state(source) == "free")
            ),
        )
        self._slots[sample_id] = target

    # ------------------------------------------------------------------ patterns

    def pattern_path(self, sample_id: str) -> Path:
        """Where the instrument writes the pattern of ``sample_id``."""
        return self.exchange_dir / f"{_check_name('sample_id', sample_id)}.xrdml"

    def _new_file(self, path: Path, scan: _Scan) -> tuple[int, int] | None:
        """The pattern file's signature if it can be this scan's: not older than the
        MEASURE (less a second: the instrument's clock may be behind), not the file that
        was there then."""
        signature = _signature(path)
        if signature is None or signature == scan.stale:
            return None
        return signature if signature[1] >= (scan.started - 1.0) * 1e9 else None

    def _scan_began(self, path: Path, scan: _Scan) -> bool:
        """Whether the instrument took ``scan``'s MEASURE: it is busy, or wrote the file.

        READY first: asked second, a scan that ends in between would look like none.
        """
        return not self.is_ready() or self._new_file(path, scan) is not None

    def wait_for_pattern(
        self,
        sample_id: str,
        timeout_lab_s: float,
        clock: Clock,
        poll_lab_s: float = 5.0,
    ) -> DiffractionPattern:
        """Wait until ``<sample_id>.xrdml`` is there and the instrument is ready; read it.

        A file older than this driver's :meth:`measure` call, or the very file that was
        there when it was called, is a stale one from an earlier scan and is ignored. A
        file that does not parse is re-read while it changes (the instrument may still
        be writing it). The pattern is returned once READY=yes (an instrument may write
        it before it clears busy), so the sample can be removed next. Safe to repeat.

        Raises
        ------
        InstrumentTimeout
            No usable file, or the instrument still busy, after ``timeout_lab_s`` lab s.
        PatternFileError
            The file stopped changing and is still truncated or malformed.
        PatternRangeError
            The instrument is ready and the file's 2θ range is not the one of the program
            :meth:`measure` ran (within :data:`RANGE_TOLERANCE`; unchecked for a program
            whose name encodes no range).
        """
        path = self.pattern_path(sample_id)
        scan = self._scans.get(sample_id, _Scan(0.0, None, None))
        deadline = Deadline(clock, timeout_lab_s)
        seen: tuple[tuple[int, int], DiffractionPattern | PatternFileError] | None = None
        while True:
            signature = self._new_file(path, scan)
            if signature is not None and seen is not None and seen[0] == signature:
                if isinstance(seen[1], PatternFileError):
                    raise self._wrote(seen[1])  # it stopped changing and is still unreadable
            elif signature is not None:
                seen = (signature, _read(path))
            if seen is not None and isinstance(seen[1], DiffractionPattern) and self.is_ready():
                try:
                    _check_range(path, sample_id, scan.program, seen[1])
                except PatternRangeError as wrong:
                    # Not this scan's file: stale from now on, and MEASURE may run anew.
                    self._scans[sample_id] = replace(scan, stale=seen[0])
                    raise self._wrote(wrong) from None
                self._scans.pop(sample_id, None)
                return seen[1]
            if deadline.expired:
                if seen is not None and isinstance(seen[1], PatternFileError):
                    raise self._wrote(seen[1])
                raise InstrumentTimeout(
                    f"{path} is there, but the instrument still reports READY=no after "
                    f"{timeout_lab_s:g} lab s"
                    if seen is not None
                    else f"no pattern {path} within {timeout_lab_s:g} lab s",
                    instrument=self.name,
                )
            clock.sleep(min(poll_lab_s, deadline.remaining))

    def _wrote(self, error: PatternFileError) -> PatternFileError:
        """``error`` blamed on this instrument, which wrote the file."""
        error.instrument = self.name
        return error


def _check_range(
    path: Path, sample_id: str, program: str | None, pattern: DiffractionPattern
) -> None:
    """Raise PatternRangeError if ``pattern`` does not span the range ``program`` encodes."""
    if program is None or (expected := program_range(program)) is None:
        return
    found = (float(pattern.two_theta[0]), float(pattern.two_theta[-1]))
    if any(abs(f - e) > RANGE_TOLERANCE for f, e in zip(found, expected, strict=True)):
        raise PatternRangeError(path, sample_id, program, expected, found)


def _read(path: Path) -> DiffractionPattern | PatternFileError:
    """The pattern in ``path``, or what is wrong with the file."""
    try:
        return read_xrdml(path)
    except PatternFileError as exc:
        return exc


def _signature(path: Path) -> tuple[int, int] | None:
    """(size, mtime) of a file, None when there is none: tells a new file from an old one."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns
