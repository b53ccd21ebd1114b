"""Ocean Optics spectrometers: the RS-232 command set, and USB through ``seabreeze``.

Both drivers share :class:`SpectrometerDriver`, so a device accepts either:

- :class:`OceanOpticsSerial` speaks the serial command set (USB2000, USB2000+, USB4000,
  Flame) over any pyserial URL: a device path, ``socket://host:port`` (a serial server,
  or the emulator). Binary data mode; one letter and a big-endian WORD per command,
  answered ACK (0x06) or NAK (0x15); ``S`` answers STX and a frame
  (0xFFFF, data size, scans, integration ms, baseline MSW/LSW, pixel mode, pixels,
  0xFFFD), or ETX.
- :class:`SeaBreezeSpectrometer` drives a USB instrument through the optional
  ``seabreeze`` package (``pip install athanor[usb]``).

Counts come back as the mean per scan of the accumulated scans. Firmware that adds them
sends DWORD sums (data size 1), firmware that averages sends WORD means (data size 0):
the serial driver tells them apart by that flag. Saturation is data, not an error:
:meth:`SpectrometerDriver.saturated` tells.

Wavelength calibration: the instrument keeps c0..c3 of
``λ(p) = c0 + c1 p + c2 p² + c3 p³`` in EEPROM configuration slots 1-4 as ASCII text;
:meth:`OceanOpticsSerial.wavelengths` reads them with ``?x`` + WORD slot, expecting ACK and
16 NUL-padded ASCII bytes as the USB query returns a slot. That serial reply is inferred,
not verified on hardware: where a firmware refuses it (NAK), the driver uses
``wavelength_coefficients`` (from the instrument's calibration sheet, in the lab config)
and says so in :attr:`OceanOpticsSerial.lacks`.

Keeping in step with a unit whose replies carry no sequence numbers: every refusal (NAK,
ETX) is followed by a drain, as a firmware may refuse the first bytes of a command and
take the rest as further commands, each refused late; after a timeout the next request
is preceded by ``v`` and everything before its reply is discarded, so a late answer to
the request that timed out is not taken for the next one's.
"""

from __future__ import annotations

import struct
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TypeVar

import numpy as np
import serial

from athanor.clock import Clock, WallClock

from .errors import (
    ConnectionLost,
    DriverError,
    InstrumentFault,
    InstrumentTimeout,
    LimitError,
    ProtocolError,
    SettingNotApplied,
    Unsupported,
)

ACK, NAK, STX, ETX = 0x06, 0x15, 0x02, 0x03
FRAME_START, FRAME_END = 0xFFFF, 0xFFFD
BAUDRATES = (2400, 4800, 9600, 19200, 38400, 115200)
_QUIET_S = 0.05  # wall seconds of silence that end a drain after a broken reply
_CHECKED = {"I": "integration time (ms)", "A": "scans to average"}  # against each frame
T = TypeVar("T")


@dataclass(frozen=True)
class SpectrometerSpec:
    """Datasheet limits of a model, enforced before anything goes on the wire."""

    model: str
    pixels: int
    full_scale: int
    min_integration_ms: float
    max_integration_ms: float
    max_scans: int = 5000
    max_boxcar: int = 15


SPECS: dict[str, SpectrometerSpec] = {
    s.model: s
    for s in (
        SpectrometerSpec("usb2000", 2048, 4095, 3, 65535),
        SpectrometerSpec("usb2000plus", 2048, 65535, 1, 65535),
        SpectrometerSpec("usb4000", 3648, 65535, 1, 65535),
        SpectrometerSpec("flame", 2048, 65535, 1, 65535),
    )
}


@dataclass(frozen=True)
class Identity:
    """What an instrument says it is (``None``: it did not say)."""

    model: str
    serial_number: str | None
    firmware: str | None

    def __str__(self) -> str:
        return (
            f"Ocean Optics {self.model} S/N {self.serial_number or 'unknown'}, "
            f"firmware {self.firmware or 'unknown'}"
        )


@dataclass(frozen=True)
class FrameInfo:
    """The header of the last spectrum frame (``dword``: the pixels were sums of the scans)."""

    scans: int
    integration_ms: int
    baseline: int
    dword: bool
    compressed: bool


def boxcar(values: np.ndarray, half_width: int) -> np.ndarray:
    """Each pixel replaced by the mean of pixels p-b..p+b (fewer at the ends)."""
    if half_width == 0:
        return values
    n = values.size
    cum = np.concatenate(([0.0], np.cumsum(values, dtype=float)))
    idx = np.arange(n)
    lo, hi = np.maximum(idx - half_width, 0), np.minimum(idx + half_width + 1, n)
    return (cum[hi] - cum[lo]) / (hi - lo)


def _scan_tokens(data: bytes, pixels: int) -> tuple[list[int], int, int, int]:
    """Walk compressed data: escape positions, complete tokens, bytes they use, bytes needed.

    Only 0x80 bytes at a token boundary start an escape; the loop runs over 0x80 bytes only.
    """
    n = len(data)
    escapes: list[int] = []
    tokens = pos = 0
    for c in np.flatnonzero(np.frombuffer(data, np.uint8) == 0x80).tolist():
        if c < pos:
            continue  # a byte of the value after an escape
        tokens += c - pos  # the single-byte deltas before this escape
        if tokens >= pixels or c + 3 > n:
            pos = c
            break
        escapes.append(c)
        tokens, pos = tokens + 1, c + 3
    else:
        tokens, pos = tokens + n - pos, n
    if tokens >= pixels:
        return escapes, pixels, pos - (tokens - pixels), 0
    partial = n - pos  # the start of an unfinished escape
    return escapes, tokens, pos, pixels - tokens + (2 - partial if partial else 0)


def _decode_tokens(data: bytes, escapes: list[int], used: int) -> np.ndarray:
    raw = np.frombuffer(data, np.uint8)[:used]
    esc = np.asarray(escapes, dtype=np.int64)
    is_delta = np.ones(used, dtype=bool)
    for k in range(3):
        is_delta[esc + k] = False
    starts = np.sort(np.concatenate((np.flatnonzero(is_delta), esc)))
    is_esc = np.zeros(starts.size, dtype=bool)
    is_esc[np.searchsorted(starts, esc)] = True
    delta = np.where(is_esc, 0, raw.view(np.int8)[starts].astype(np.int64))
    running = np.cumsum(delta)
    group = np.cumsum(is_esc)  # values after the k-th escape count from its full value
    full = np.concatenate(([0], raw[esc + 1].astype(np.int64) << 8 | raw[esc + 2]))
    at_escape = np.concatenate(([0], running[is_esc]))
    return full[group] + running - at_escape[group]


def decompress(data: bytes, pixels: int) -> tuple[np.ndarray, int]:
    """Decode Ocean Optics delta compression: ``(values, bytes used)``.

    A signed byte is the difference from the previous pixel; 0x80 is followed by the full
    16-bit value. Stops after ``pixels`` values; raises ValueError if ``data`` ends first.
    """
    escapes, tokens, used, _ = _scan_tokens(data, pixels)
    if tokens < pixels:
        raise ValueError(f"compressed data end after {tokens} of {pixels} pixels")
    return _decode_tokens(data, escapes, used), used


class SpectrometerDriver(ABC):
    """What every spectrometer driver offers; a device takes any of them.

    Settings methods are safe to repeat. ``acquire`` returns counts per scan (float64,
    the mean of the scans averaged); ``wavelengths`` the pixel wavelengths in nm.
    """

    name: str
    spec: SpectrometerSpec

    @property
    def full_scale(self) -> int:
        """The largest count one scan can read."""
        return self.spec.full_scale

    def saturated(self, counts: np.ndarray) -> bool:
        """Whether any pixel of a spectrum from :meth:`acquire` sits at full scale."""
        return bool(np.any(np.asarray(counts) >= self.spec.full_scale))

    def _check(self, what: str, value: float, low: float, high: float, unit: str = "") -> None:
        if not low <= value <= high:
            raise LimitError(what, value, low, high, unit, instrument=self.name)

    @abstractmethod
    def identify(self) -> Identity:
        """Model, serial number and firmware of the instrument."""

    @abstractmethod
    def set_integration_time(self, ms: float) -> None:
        """Integration time per scan in milliseconds (model limits; LimitError outside)."""

    @abstractmethod
    def set_averaging(self, scans: int) -> None:
        """Scans to average per spectrum, 1-5000."""

    @abstractmethod
    def set_boxcar(self, half_width: int) -> None:
        """Boxcar smoothing: each pixel averaged with ``half_width`` neighbours each side."""

    @abstractmethod
    def lamp(self, on: bool) -> None:
        """Switch the lamp-enable line (the light source) on or off."""

    @abstractmethod
    def acquire(self) -> np.ndarray:
        """One spectrum: counts per scan for every pixel."""

    @abstractmethod
    def wavelengths(self) -> np.ndarray:
        """The wavelength of every pixel, nm."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection (the next call opens it again)."""

    def __enter__(self) -> SpectrometerDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- serial


class OceanOpticsSerial(SpectrometerDriver):
    """An Ocean Optics spectrometer on its RS-232 command set.

    Parameters
    ----------
    url
        pyserial URL: ``/dev/ttyUSB0``, ``socket://host:port``, ...
    model
        ``usb2000``, ``usb2000plus``, ``usb4000`` or ``flame``: pixel count and limits.
    baudrate
        The line speed the instrument is set to (9600 at power-up).
    io_timeout
        Wall seconds allowed for each reply, on top of the exposure (lab time on
        ``clock``) and the frame's transmission time at ``baudrate``.
    clock
        The lab clock integration times run on (wall time by default).
    wavelength_coefficients
        c0..c3 of the calibration, used when the instrument does not report them.
    name
        Names the instrument in errors.

    The port opens on first use (or :meth:`connect`) and again after a lost connection.
    Settings already in force are not sent again; every spectrum frame is checked against
    them. Every method is safe to repeat after a timeout. :attr:`lacks` lists what the unit
    does not offer, as the driver finds out.
    """

    def __init__(
        self,
        url: str,
        *,
        model: str = "usb2000plus",
        baudrate: int = 9600,
        io_timeout: float = 1.0,
        clock: Clock | None = None,
        wavelength_coefficients: Sequence[float] | None = None,
        name: str = "spectrometer",
    ) -> None:
        self.name = name
        if model not in SPECS:
            raise ValueError(f"{name}: model {model!r} is not one of {', '.join(SPECS)}")
        if baudrate not in BAUDRATES:
            raise ValueError(f"{name}: baudrate {baudrate!r} is not one of {BAUDRATES}")
        if not io_timeout > 0:
            raise ValueError(f"{name}: io_timeout must be > 0 wall seconds, got {io_timeout!r}")
        if wavelength_coefficients is not None and len(wavelength_coefficients) != 4:
            raise ValueError(
                f"{name}: wavelength_coefficients needs 4 values c0..c3, "
                f"got {list(wavelength_coefficients)}"
            )
        self.url, self.spec = url, SPECS[model]
        self.baudrate, self.io_timeout = baudrate, io_timeout
        self.clock = clock or WallClock()
        self._configured = (
            tuple(float(c) for c in wavelength_coefficients) if wavelength_coefficients else None
        )
        self._calibration: tuple[float, ...] | None = None
        self._port: serial.SerialBase | None = None
        self._in_force: dict[str, int] = {}
        self._unsynced = False  # a reply timed out and may still arrive (even after a reopen)
        self.last_frame: FrameInfo | None = None
        self.lacks: list[str] = []
        """What the unit does not offer and what stands in, one line per fact found."""

    # ----------------------------------------------------------- public API

    def connect(self) -> None:
        """Open the port and put the instrument in binary data mode."""
        self._open()

    def close(self) -> None:
        if self._port is not None:
            port, self._port = self._port, None
            port.close()
        self._in_force.clear()

    def identify(self) -> Identity:
        """Model, serial number (slot 0) and firmware; a part the unit refuses is ``None``."""
        version = self._unless_refused(
            lambda: self._word_reply(b"v", "v (firmware version)"),
            "firmware version (v) not answered (NAK): firmware unknown",
        )
        serial_number = self._unless_refused(
            lambda: self.read_slot(0), "EEPROM slot 0 not answered (NAK): serial number unknown"
        )
        firmware = (
            None
            if version is None
            else f"{version // 1000}.{version % 1000 // 10:02d}.{version % 10}"
        )
        return Identity(self.spec.model, serial_number, firmware)

    def set_integration_time(self, ms: float) -> None:
        self._check(
            "integration_time", ms, self.spec.min_integration_ms, self.spec.max_integration_ms, "ms"
        )
        if ms != int(ms):
            raise ValueError(
                f"{self.name}: integration_time = {ms} ms; the serial interface takes whole "
                "milliseconds"
            )
        self._setting("I", int(ms))

    def set_averaging(self, scans: int) -> None:
        self._check("scans_to_average", scans, 1, self.spec.max_scans)
        self._setting("A", int(scans))

    def set_boxcar(self, half_width: int) -> None:
        self._check("boxcar", half_width, 0, self.spec.max_boxcar, "pixels")
        self._setting("B", int(half_width))

    def set_compression(self, on: bool) -> None:
        """Delta-compress WORD spectra on the wire (fewer bytes on a slow line)."""
        self._setting("G", int(bool(on)))

    def lamp(self, on: bool) -> None:
        self._setting("J", int(bool(on)))

    def initialize(self) -> None:
        """``Q``: back to power-up settings (data mode and baud rate kept)."""
        self._in_force.clear()
        self._ack(b"Q", "Q (initialise)")

    def query(self, letter: str) -> int:
        """The value of setting ``letter`` (A, B, G, I, J, K) as the instrument holds it."""
        if len(letter) != 1 or letter not in "ABGIJK":
            raise ValueError(f"{self.name}: cannot query {letter!r}; use one of A B G I J K")
        value = self._word_reply(b"?" + letter.encode(), f"?{letter}")
        self._in_force[letter] = value
        return value

    def read_slot(self, slot: int) -> str:
        """Configuration slot ``slot`` (0 serial number, 1-4 wavelength coefficients...)."""
        self._check("slot", slot, 0, 19)
        port = self._open()
        what = f"?x {slot} (configuration slot)"
        self._send(port, b"?x" + struct.pack(">H", slot))
        self._expect_ack(port, what)
        text = self._read(port, 16, self.io_timeout, what)
        try:
            return text.rstrip(b"\0").decode("ascii").strip()
        except UnicodeDecodeError:
            raise self._garbled(port, f"reply to {what} is not ASCII text: {text!r}") from None

    def wavelengths(self) -> np.ndarray:
        """From EEPROM slots 1-4; where the unit refuses them, from ``wavelength_coefficients``.

        Raises :class:`Unsupported` when the unit refuses them and none were configured.
        """
        if self._calibration is None:
            self._calibration = self._read_calibration()
        pixels = np.arange(self.spec.pixels, dtype=float)
        return np.polynomial.polynomial.polyval(pixels, self._calibration)

    def acquire(self) -> np.ndarray:
        """One spectrum, counts per scan; :class:`SettingNotApplied` when the frame shows an
        integration time or a scan count other than the one in force."""
        in_force = {letter: self._current(letter) for letter in _CHECKED}
        compressed = bool(self._current("G"))
        port = self._open()
        exposure = self.clock.to_wall(in_force["I"] / 1000 * in_force["A"])
        self._send(port, b"S")
        first = self._read(port, 1, self.io_timeout + exposure, "S (acquire)")[0]
        if first in (ETX, NAK):
            raise self._refusal(port, "ETX" if first == ETX else "NAK", "S (acquire)")
        if first != STX:
            raise self._garbled(port, f"reply to S starts with 0x{first:02X}, expected STX (0x02)")
        n = self.spec.pixels
        budget = self.io_timeout + (14 + 4 * n + 2) * 10 / self.baudrate
        deadline = time.monotonic() + budget
        header = self._read_until(port, 14, deadline, budget, "the spectrum header")
        start, size, got_scans, got_ms, msw, lsw, mode = struct.unpack(">7H", header)
        problem = (
            f"starts with 0x{start:04X}, expected 0xFFFF"
            if start != FRAME_START
            else f"has data size flag {size}, expected 0 or 1"
            if size not in (0, 1)
            else f"has pixel mode {mode}; only full spectra (mode 0) are read"
            if mode != 0
            else "reports 0 scans accumulated"
            if got_scans == 0
            else ""
        )
        if problem:
            raise self._garbled(port, f"spectrum frame {problem}")
        packed = compressed and size == 0
        end = b""
        if size == 1:
            raw = np.frombuffer(self._read_until(port, 4 * n, deadline, budget, "pixels"), ">u4")
        elif packed:
            raw, end = self._read_compressed(port, n, deadline, budget)
        else:
            raw = np.frombuffer(self._read_until(port, 2 * n, deadline, budget, "pixels"), ">u2")
        if len(end) < 2:
            end += self._read_until(port, 2 - len(end), deadline, budget, "the end word")
        if end != struct.pack(">H", FRAME_END):
            raise self._garbled(
                port,
                f"spectrum frame ends with 0x{end.hex().upper()}, expected 0xFFFD after {n} "
                f"pixels (is model {self.spec.model!r} right?)",
            )
        self.last_frame = FrameInfo(got_scans, got_ms, msw << 16 | lsw, bool(size), packed)
        self._confirm(in_force, {"I": got_ms, "A": got_scans})
        counts = raw.astype(np.float64)
        return counts / got_scans if size == 1 else counts  # WORD: one scan, or their mean

    # ----------------------------------------------------------- commands

    def _unless_refused(self, read: Callable[[], T], lack: str) -> T | None:
        """``read()``, or ``None`` with ``lack`` noted in :attr:`lacks` when the unit refuses."""
        try:
            return read()
        except InstrumentFault:
            if lack not in self.lacks:
                self.lacks.append(lack)
            return None

    def _read_calibration(self) -> tuple[float, ...]:
        stand_in = (
            "wavelengths from the lab config's coefficients"
            if self._configured
            else "no wavelength_coefficients configured either"
        )
        texts = self._unless_refused(
            lambda: [self.read_slot(slot) for slot in (1, 2, 3, 4)],
            f"EEPROM wavelength slots 1-4 not answered (NAK): {stand_in}",
        )
        if texts is None:
            if self._configured is None:
                raise Unsupported(
                    "the unit does not report its wavelength calibration (EEPROM slots 1-4 "
                    "refused): give wavelength_coefficients: [c0, c1, c2, c3] from its "
                    f"calibration sheet under instruments.{self.name} in the lab YAML",
                    instrument=self.name,
                )
            return self._configured
        try:
            return tuple(float(t) for t in texts)
        except ValueError:
            raise ProtocolError(
                f"wavelength coefficients in slots 1-4 are not numbers: {texts}",
                instrument=self.name,
            ) from None

    def _confirm(self, in_force: dict[str, int], reported: dict[str, int]) -> None:
        """Raise SettingNotApplied where a frame reports other settings than those in force."""
        wrong = [letter for letter in in_force if reported[letter] != in_force[letter]]
        for letter in wrong:
            self._in_force.pop(letter, None)  # the unit's word cannot be trusted: ask again
        if wrong:
            raise SettingNotApplied(
                "setting not applied",
                instrument=self.name,
                detail="; ".join(
                    f"{_CHECKED[k]} is {in_force[k]}, the spectrum frame reports {reported[k]}"
                    for k in wrong
                ),
            )

    def _current(self, letter: str) -> int:
        return self._in_force[letter] if letter in self._in_force else self.query(letter)

    def _setting(self, letter: str, value: int) -> None:
        before = self._in_force.pop(letter, None)
        if before == value:
            self._in_force[letter] = value
            return
        try:
            self._ack(letter.encode() + struct.pack(">H", value), f"{letter} {value}")
        except InstrumentFault:
            if before is not None:  # refused: the old value still holds
                self._in_force[letter] = before
            raise
        self._in_force[letter] = value

    def _ack(self, command: bytes, what: str) -> None:
        port = self._open()
        self._send(port, command)
        self._expect_ack(port, what)

    def _word_reply(self, command: bytes, what: str) -> int:
        port = self._open()
        self._send(port, command)
        self._expect_ack(port, what)
        return struct.unpack(">H", self._read(port, 2, self.io_timeout, what))[0]

    def _expect_ack(self, port: serial.SerialBase, what: str) -> None:
        reply = self._read(port, 1, self.io_timeout, what)[0]
        if reply == NAK:
            raise self._refusal(port, "NAK", what)
        if reply != ACK:
            raise self._garbled(
                port, f"reply to {what} is 0x{reply:02X}, expected ACK (0x06) or NAK (0x15)"
            )

    # ----------------------------------------------------------- transport

    def _garbled(self, port: serial.SerialBase, message: str) -> ProtocolError:
        """The error to raise for a broken reply, once the line is drained; what the unit
        holds is asked again."""
        self._drain(port)
        self._in_force.clear()
        return ProtocolError(message, instrument=self.name)

    def _refusal(self, port: serial.SerialBase, reason: str, what: str) -> InstrumentFault:
        """The fault to raise for a refusal, once the line is drained of late refusals."""
        self._drain(port)
        return InstrumentFault(reason, instrument=self.name, detail=f"{what} refused")

    def _open(self) -> serial.SerialBase:
        """The port, opened and in binary mode, and in step after a timeout."""
        port = self._port if self._port is not None else self._connect_port()
        if self._unsynced:
            self._resync(port)
        return port

    def _resync(self, port: serial.SerialBase) -> None:
        """``v``, and everything before its reply (the last bytes before the line goes
        quiet: ACK and a WORD, or NAK) discarded."""
        what = "v (resynchronising after a timeout)"
        self._send(port, b"v")
        got = self._read(port, 1, self.io_timeout, what) + self._drain(port)
        if got[-1] != NAK and got[-3:-2] != bytes([ACK]):
            raise self._garbled(
                port,
                f"reply to {what} ends with 0x{got[-3:].hex().upper()}, expected ACK and a WORD",
            )
        self._unsynced = False

    def _connect_port(self) -> serial.SerialBase:
        try:
            port = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=self.io_timeout)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ConnectionLost(f"cannot open {self.url}: {exc}", instrument=self.name) from None
        self._port = port
        self._in_force.clear()
        try:
            # Binary mode whatever the last client left: in ASCII mode "bB" is echoed first.
            self._send(port, b"bB")
            deadline = time.monotonic() + self.io_timeout
            while (reply := self._read_until(port, 1, deadline, self.io_timeout, "bB")[0]) != ACK:
                if reply == NAK:
                    raise self._refusal(port, "NAK", "bB")
                if reply not in b"bB":
                    raise self._garbled(
                        port, f"reply to bB (binary mode) is 0x{reply:02X}, expected ACK (0x06)"
                    )
        except DriverError:
            self.close()
            raise
        return port

    def _send(self, port: serial.SerialBase, data: bytes) -> None:
        try:
            port.reset_input_buffer()  # a late reply to an earlier request must not count
            port.write(data)
        except (serial.SerialException, OSError) as exc:
            self._lost(exc)

    def _read(self, port: serial.SerialBase, n: int, timeout: float, what: str) -> bytes:
        return self._read_until(port, n, time.monotonic() + timeout, timeout, what)

    def _read_until(
        self, port: serial.SerialBase, n: int, deadline: float, budget: float, what: str
    ) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                self._in_force.clear()
                self._unsynced = True
                got = f" ({len(buf)} of {n} bytes)" if buf else ""
                raise InstrumentTimeout(
                    f"no complete reply to {what} within {budget:.3g} s{got}", instrument=self.name
                )
            try:
                port.timeout = left
                buf += port.read(n - len(buf))
            except (serial.SerialException, OSError) as exc:
                self._lost(exc)
        return bytes(buf)

    def _read_compressed(
        self, port: serial.SerialBase, pixels: int, deadline: float, budget: float
    ) -> tuple[np.ndarray, bytes]:
        """The pixels, and the bytes read past them (the start of the end word)."""
        data = b""
        escapes, _, used, need = _scan_tokens(data, pixels)
        while need > 0:
            data += self._read_until(port, need, deadline, budget, "compressed pixels")
            try:  # and whatever else has arrived, so a frame takes few rounds
                port.timeout = 0
                data += port.read(3 * pixels + 2 - len(data))
            except (serial.SerialException, OSError) as exc:
                self._lost(exc)
            escapes, _, used, need = _scan_tokens(data, pixels)
        return _decode_tokens(data, escapes, used), data[used:]

    def _drain(self, port: serial.SerialBase) -> bytes:
        """Swallow what arrives until the line is quiet, so the next request starts clean."""
        got = bytearray()
        try:
            port.timeout = _QUIET_S
            while chunk := port.read(4096):
                got += chunk
        except (serial.SerialException, OSError) as exc:
            self._lost(exc)
        return bytes(got)

    def _lost(self, exc: Exception) -> None:
        self.close()
        raise ConnectionLost(f"connection to {self.url} lost: {exc}", instrument=self.name)


# --------------------------------------------------------------------------- USB


class BackendUnavailable(DriverError, ImportError):
    """An optional package a driver needs is not installed."""


def _seabreeze() -> ModuleType:
    try:
        import seabreeze.spectrometers as sb
    except ImportError as exc:
        raise BackendUnavailable(
            "USB spectrometers need the optional 'seabreeze' package: "
            f"pip install athanor[usb] ({exc})"
        ) from None
    return sb


class SeaBreezeSpectrometer(SpectrometerDriver):
    """An Ocean Optics USB spectrometer through ``seabreeze`` (the optional extra ``usb``).

    Parameters
    ----------
    url
        ``usb://`` (the first instrument found) or ``usb://SERIAL``.
    name
        Names the instrument in errors.

    Averaging and boxcar are applied here, the same way the serial firmware does.
    """

    def __init__(self, url: str = "usb://", *, name: str = "spectrometer") -> None:
        if not url.startswith("usb://"):
            raise ValueError(f"{name}: {url!r} is not a USB spectrometer URL; write usb://[SERIAL]")
        self.url, self.name = url, name
        self.serial_number = url.removeprefix("usb://").strip("/") or None
        self._sb = _seabreeze()
        self._dev = None
        self._scans, self._boxcar = 1, 0
        self._spec: SpectrometerSpec | None = None

    @property
    def spec(self) -> SpectrometerSpec:  # type: ignore[override]
        if self._spec is None:
            dev = self._device()
            low, high = dev.integration_time_micros_limits
            self._spec = SpectrometerSpec(
                str(dev.model), int(dev.pixels), int(dev.max_intensity), low / 1000, high / 1000
            )
        return self._spec

    def _device(self):  # -> seabreeze.spectrometers.Spectrometer
        if self._dev is None:
            try:
                self._dev = self._sb.Spectrometer.from_serial_number(self.serial_number)
            except Exception as exc:  # seabreeze raises its own error types per backend
                raise ConnectionLost(
                    f"cannot open {self.url}: {exc}", instrument=self.name
                ) from None
        return self._dev

    def _call(self, what: str, fn, *args):
        try:
            return fn(*args)
        except DriverError:
            raise
        except Exception as exc:
            raise InstrumentFault(
                "seabreeze", instrument=self.name, detail=f"{what}: {exc}"
            ) from None

    def identify(self) -> Identity:
        dev = self._device()
        return Identity(str(dev.model), str(dev.serial_number), None)

    def set_integration_time(self, ms: float) -> None:
        spec = self.spec
        self._check("integration_time", ms, spec.min_integration_ms, spec.max_integration_ms, "ms")
        dev = self._device()
        self._call("integration time", dev.integration_time_micros, round(ms * 1000))

    def set_averaging(self, scans: int) -> None:
        self._check("scans_to_average", scans, 1, self.spec.max_scans)
        self._scans = int(scans)

    def set_boxcar(self, half_width: int) -> None:
        self._check("boxcar", half_width, 0, self.spec.max_boxcar, "pixels")
        self._boxcar = int(half_width)

    def lamp(self, on: bool) -> None:
        dev = self._device()
        feature = getattr(dev.f, "strobe_lamp", None)
        if feature is None:
            raise InstrumentFault("not supported", instrument=self.name, detail="no lamp line")
        self._call("lamp", feature.enable_lamp, bool(on))

    def acquire(self) -> np.ndarray:
        dev = self._device()
        total = np.zeros(self.spec.pixels)
        for _ in range(self._scans):
            total += self._call("acquire", dev.intensities)
        return boxcar(total / self._scans, self._boxcar)

    def wavelengths(self) -> np.ndarray:
        return np.asarray(self._call("wavelengths", self._device().wavelengths), dtype=float)

    def close(self) -> None:
        if self._dev is not None:
            dev, self._dev = self._dev, None
            dev.close()
