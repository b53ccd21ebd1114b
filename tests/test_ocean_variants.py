"""Real Ocean Optics firmware where the documented facts are silent, and golden frames.

Each variant the emulator plays (``firmware`` and ``faults`` switches) against the serial
driver over the wire; then the bytes of the protocol document (reference/instruments.md)
played by a tiny loopback server, so the driver and the emulator cannot agree on a mistake.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from athanor.clock import ManualClock
from athanor.drivers.errors import (
    InstrumentFault,
    InstrumentTimeout,
    SettingNotApplied,
    Unsupported,
)
from athanor.drivers.ocean_optics import Identity, OceanOpticsSerial
from athanor.simulators.ocean_optics import DEFAULTS, OceanOpticsEmulator

URLS = ["pty://", "socket://127.0.0.1:0"]
Pair = tuple[OceanOpticsEmulator, OceanOpticsSerial]
SLOT_LACK = "EEPROM slot 0 not answered (NAK): serial number unknown"
CALIBRATION_LACK = (
    "EEPROM wavelength slots 1-4 not answered (NAK): wavelengths from the lab config's coefficients"
)


@pytest.fixture
def connect(loop):
    """An emulator with these settings, and a driver (``driver=``: its options) on it."""
    drivers: list[OceanOpticsSerial] = []

    def make(
        url: str = "pty://", *, io_timeout: float = 0.2, driver: dict | None = None, **settings
    ) -> Pair:
        clock = ManualClock()
        emulator = OceanOpticsEmulator(url, settings, clock=clock)
        options = {"io_timeout": io_timeout, "name": "uvvis", **(driver or {})}
        drivers.append(OceanOpticsSerial(loop.start(emulator), clock=clock, **options))
        return emulator, drivers[-1]

    yield make
    for d in drivers:
        d.close()


# --------------------------------------------------------------------------- no EEPROM slots


@pytest.mark.parametrize("url", URLS)
def test_a_unit_refusing_slot_queries_at_serial_speed_stays_in_step(connect, url):
    # ?x is refused at once, then the slot WORD comes back as two late refusals.
    _, driver = connect(url, firmware={"nak_slot_queries": True, "pace_baud": 9600})
    for _ in range(3):
        assert driver.identify() == Identity("usb2000plus", None, "3.01.0")
        assert (driver.query("A"), driver.query("I")) == (1, 100)
    assert driver.lacks == [SLOT_LACK]
    assert "S/N unknown" in str(driver.identify())


def test_refused_slots_take_the_configured_wavelength_coefficients(connect):
    _, driver = connect(
        driver={"wavelength_coefficients": (300, 0.3, 0, 0)}, firmware={"nak_slot_queries": True}
    )
    wavelengths = driver.wavelengths()
    assert wavelengths[0] == 300 and wavelengths[10] == pytest.approx(303)
    driver.identify()
    driver.wavelengths()
    assert driver.lacks == [CALIBRATION_LACK, SLOT_LACK]


def test_refused_slots_without_configured_coefficients_name_the_key_to_set(connect):
    _, driver = connect(firmware={"nak_slot_queries": True})
    with pytest.raises(Unsupported, match=r"wavelength_coefficients.*instruments\.uvvis"):
        driver.wavelengths()
    assert driver.query("A") == 1  # still in step


def test_a_unit_answering_its_slots_reports_its_own_calibration(connect):
    emulator, driver = connect(driver={"wavelength_coefficients": (300, 0.3, 0, 0)})
    np.testing.assert_allclose(driver.wavelengths(), emulator.wavelengths, rtol=1e-7)
    assert driver.identify().serial_number == "SIM00001"
    assert driver.lacks == []


# --------------------------------------------------------------------------- spectra


@pytest.mark.parametrize("mode", ["sum", "average"])
def test_added_or_averaged_scans_come_back_as_the_mean_per_scan(connect, mode):
    emulator, driver = connect(firmware={"scan_mode": mode})
    driver.lamp(True)
    driver.set_averaging(8)
    counts = driver.acquire()
    assert driver.last_frame is not None and driver.last_frame.dword == (mode == "sum")
    assert np.median(counts / emulator.expected_counts()) == pytest.approx(1.0, abs=0.01)


def test_a_spectrum_paced_at_the_line_speed_arrives_whole(connect):
    _, driver = connect(io_timeout=1.0, driver={"baudrate": 115200}, firmware={"pace_baud": 115200})
    driver.lamp(True)
    assert driver.acquire().shape == (2048,)


def test_an_integration_time_acknowledged_but_not_applied_is_an_error(connect):
    emulator, driver = connect(faults={"ignore_integration_time": True})
    driver.set_integration_time(40)
    with pytest.raises(SettingNotApplied, match=r"integration time \(ms\) is 40.*reports 100"):
        driver.acquire()
    emulator.faults.ignore_integration_time = False
    driver.set_integration_time(40)  # sent again: the unit's acknowledgement was not trusted
    driver.acquire()
    assert driver.last_frame is not None and driver.last_frame.integration_ms == 40


# --------------------------------------------------------------------------- lost replies

Call = Callable[[OceanOpticsSerial], Any]
Check = Callable[[OceanOpticsEmulator, OceanOpticsSerial, Any], bool]

# Each public method, and what its repeat must give. The driver has been in use (A 3, and
# I and G known), so acquire's first request is S and its frame is the reply lost.
CALLS: dict[str, tuple[Call, Check]] = {
    "connect": (lambda d: (d.close(), d.connect()), lambda e, d, r: d.query("A") == 3),
    "set_integration_time": (
        lambda d: d.set_integration_time(40),
        lambda e, d, r: e.values["I"] == 40,
    ),
    "set_averaging": (lambda d: d.set_averaging(4), lambda e, d, r: e.values["A"] == 4),
    "set_boxcar": (lambda d: d.set_boxcar(2), lambda e, d, r: e.values["B"] == 2),
    "set_compression": (lambda d: d.set_compression(True), lambda e, d, r: e.values["G"] == 1),
    "lamp": (lambda d: d.lamp(True), lambda e, d, r: e.values["J"] == 1),
    "initialize": (lambda d: d.initialize(), lambda e, d, r: e.values == DEFAULTS),
    "query": (lambda d: d.query("I"), lambda e, d, r: r == 100),
    "read_slot": (lambda d: d.read_slot(0), lambda e, d, r: r == "SIM00001"),
    "identify": (
        lambda d: d.identify(),
        lambda e, d, r: r == Identity("usb2000plus", "SIM00001", "3.01.0"),
    ),
    "wavelengths": (
        lambda d: d.wavelengths(),
        lambda e, d, r: np.allclose(r, e.wavelengths, rtol=1e-7),
    ),
    "acquire": (
        lambda d: d.acquire(),
        lambda e, d, r: d.last_frame.scans == 3 and r.shape == (2048,),
    ),
}


def in_use(connect: Callable[..., Pair], **options: float) -> Pair:
    emulator, driver = connect(**options)
    driver.set_averaging(3)
    driver.query("I")
    driver.query("G")
    return emulator, driver


@pytest.mark.parametrize("name", CALLS)
def test_a_call_whose_reply_is_lost_is_safe_to_repeat(connect, name):
    call, check = CALLS[name]
    emulator, driver = in_use(connect)
    emulator.faults.lose_replies = 1
    with pytest.raises(InstrumentTimeout):
        call(driver)
    assert emulator.faults.lose_replies == 0  # the instrument took the request
    assert check(emulator, driver, call(driver))
    assert driver.query("B") == emulator.values["B"]


@pytest.mark.parametrize("name", ["set_boxcar", "query", "read_slot", "acquire"])
def test_a_late_reply_is_not_taken_for_the_next_answer(connect, name):
    call, check = CALLS[name]
    emulator, driver = in_use(connect, io_timeout=0.3)
    emulator.faults.reply_delay_s = 0.45  # after the timeout, while the next request waits
    with pytest.raises(InstrumentTimeout):
        call(driver)
    emulator.faults.reply_delay_s = 0
    assert driver.query("A") == 3
    assert check(emulator, driver, call(driver))


# --------------------------------------------------------------------------- golden frames

ACK, NAK = b"\x06", b"\x15"
HEADER_1_SCAN = bytes.fromhex("FFFF 0000 0001 0064 0000 03E8 0000")  # WORD, 1 scan, 100 ms
WORD_PIXELS = bytes.fromhex("0102 8000") * 1024  # 258, 32768, ...
WORD_FRAME = b"\x02" + HEADER_1_SCAN + WORD_PIXELS + bytes.fromhex("FFFD")
DWORD_FRAME = (  # 4 scans added, 20 ms: DWORD sums 65536, 4000, ...
    bytes.fromhex("02 FFFF 0001 0004 0014 0000 03E8 0000")
    + bytes.fromhex("00010000 00000FA0") * 1024
    + bytes.fromhex("FFFD")
)
AVERAGED_FRAME = (  # 4 scans averaged, 20 ms: WORD means
    bytes.fromhex("02 FFFF 0000 0004 0014 0000 03E8 0000") + WORD_PIXELS + bytes.fromhex("FFFD")
)
COMPRESSED_FRAME = (  # 1000 in full, then +5 -5 ...: 1000, 1005, 1000, ...
    b"\x02"
    + HEADER_1_SCAN
    + bytes.fromhex("8003E8")
    + bytes.fromhex("05FB") * 1023
    + b"\x05"
    + bytes.fromhex("FFFD")
)
SETTINGS = {b"?I": ACK + bytes.fromhex("0064"), b"?A": ACK + bytes.fromhex("0001")}
FOUR_SCANS = {b"?I": ACK + bytes.fromhex("0014"), b"?A": ACK + bytes.fromhex("0004")}
PLAIN, PACKED = {b"?G": ACK + bytes.fromhex("0000")}, {b"?G": ACK + bytes.fromhex("0001")}


class Played:
    """A loopback TCP unit that answers each request it knows with fixed bytes."""

    name = "golden"

    def __init__(self, replies: dict[bytes, bytes]) -> None:
        self.replies = {b"bB": ACK, **replies}
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"socket://{host}:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heard = b""
        while chunk := await reader.read(4096):
            heard += chunk
            while known := next((r for r in self.replies if heard.startswith(r)), b""):
                heard = heard.removeprefix(known)
                writer.write(self.replies[known])
        writer.close()


@pytest.fixture
def golden(loop):
    """A driver on a unit that plays these replies."""
    drivers: list[OceanOpticsSerial] = []

    def make(replies: dict[bytes, bytes]) -> OceanOpticsSerial:
        url = loop.start(Played(replies))
        drivers.append(OceanOpticsSerial(url, io_timeout=0.5, clock=ManualClock()))
        return drivers[-1]

    yield make
    for d in drivers:
        d.close()


@pytest.mark.parametrize(
    ("replies", "frame", "counts", "dword"),
    [
        ({**SETTINGS, **PLAIN}, WORD_FRAME, [258, 32768], False),
        ({**FOUR_SCANS, **PLAIN}, DWORD_FRAME, [16384, 1000], True),
        ({**FOUR_SCANS, **PLAIN}, AVERAGED_FRAME, [258, 32768], False),
        ({**SETTINGS, **PACKED}, COMPRESSED_FRAME, [1000, 1005], False),
    ],
    ids=["word", "dword-sum", "word-average", "compressed"],
)
def test_golden_spectrum_frames_decode_to_counts_per_scan(golden, replies, frame, counts, dword):
    driver = golden({**replies, b"S": frame})
    assert driver.acquire().tolist() == counts * 1024
    assert driver.last_frame is not None
    assert (driver.last_frame.baseline, driver.last_frame.dword) == (1000, dword)


def test_golden_word_replies_and_refusals(golden):
    driver = golden(
        {
            b"?A": ACK + bytes.fromhex("0005"),
            b"v": ACK + bytes.fromhex("0BC2"),
            b"?x\x00\x00": NAK,
            b"A\x00\x03": NAK,
            b"S": b"\x03",
            **PLAIN,
            b"?I": ACK + bytes.fromhex("0064"),
        }
    )
    assert driver.query("A") == 5
    assert driver.identify() == Identity("usb2000plus", None, "3.01.0")
    assert driver.lacks == [SLOT_LACK]
    with pytest.raises(InstrumentFault) as refused:
        driver.set_averaging(3)
    assert refused.value.reason == "NAK"
    with pytest.raises(InstrumentFault) as etx:
        driver.acquire()
    assert etx.value.reason == "ETX"


def test_a_golden_frame_at_another_integration_time_is_not_applied(golden):
    driver = golden({b"I\x00\x28": ACK, **SETTINGS, **PLAIN, b"S": WORD_FRAME})
    driver.set_integration_time(40)
    with pytest.raises(SettingNotApplied, match="is 40, the spectrum frame reports 100"):
        driver.acquire()
