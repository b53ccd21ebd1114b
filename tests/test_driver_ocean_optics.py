"""The Ocean Optics serial driver against the emulator over a pty and over socket://."""

from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np
import pytest

from athanor.clock import ManualClock, ScaledClock
from athanor.drivers.errors import (
    ConnectionLost,
    InstrumentFault,
    InstrumentTimeout,
    LimitError,
    ProtocolError,
)
from athanor.drivers.ocean_optics import (
    SPECS,
    BackendUnavailable,
    OceanOpticsSerial,
    SeaBreezeSpectrometer,
    SpectrometerDriver,
    decompress,
)
from athanor.simulators.hosting import BackgroundLoop
from athanor.simulators.ocean_optics import MODELS, OceanOpticsEmulator, compress

URLS = ["pty://", "socket://127.0.0.1:0"]


@pytest.fixture
def lab():
    with BackgroundLoop() as loop:
        drivers: list[OceanOpticsSerial] = []

        def connect(
            url: str = "pty://", model: str = "usb2000plus", io_timeout: float = 0.5, **settings
        ) -> tuple[OceanOpticsEmulator, OceanOpticsSerial]:
            clock = settings.pop("clock", ManualClock())
            emulator = OceanOpticsEmulator(url, {"model": model, **settings}, clock=clock)
            driver = OceanOpticsSerial(
                loop.start(emulator), model=model, io_timeout=io_timeout, clock=clock
            )
            drivers.append(driver)
            return emulator, driver

        yield connect
        for driver in drivers:
            driver.close()


@pytest.mark.parametrize("url", URLS)
def test_identify_wavelengths_and_a_spectrum(lab, url):
    emulator, driver = lab(url, model="usb4000", serial_number="USB4C01580")
    identity = driver.identify()
    assert (identity.model, identity.serial_number, identity.firmware) == (
        "usb4000",
        "USB4C01580",
        "3.00.0",
    )
    assert "USB4C01580" in str(identity)
    np.testing.assert_allclose(driver.wavelengths(), emulator.wavelengths, rtol=1e-7)
    driver.lamp(True)
    counts = driver.acquire()
    assert counts.shape == (3648,)
    expected = emulator.expected_counts()
    assert np.median(np.abs(counts - expected) / np.sqrt(expected)) < 2
    assert not driver.saturated(counts)


@pytest.mark.parametrize("url", URLS)
def test_settings_reach_the_instrument_and_averages_come_back_per_scan(lab, url):
    emulator, driver = lab(url)
    driver.set_integration_time(40)
    driver.set_averaging(8)
    driver.set_boxcar(2)
    driver.lamp(True)
    assert emulator.values == {"A": 8, "B": 2, "G": 0, "I": 40, "J": 1, "K": 2}
    counts = driver.acquire()
    assert driver.last_frame is not None
    assert (driver.last_frame.scans, driver.last_frame.integration_ms) == (8, 40)
    assert driver.last_frame.dword
    expected = emulator.expected_counts()
    assert np.median(counts / expected) == pytest.approx(1.0, abs=0.01)


def test_settings_already_in_force_are_not_sent_again(lab):
    emulator, driver = lab()
    for _ in range(3):
        driver.set_integration_time(25)
        driver.set_averaging(2)
        driver.lamp(True)
    sent = [c[:1] for c in emulator.log]
    assert sent.count(b"I") == sent.count(b"A") == sent.count(b"J") == 1
    driver.set_integration_time(30)
    assert emulator.values["I"] == 30


def test_compressed_spectra_equal_plain_ones(lab):
    _, plain = lab(seed=11)
    _, packed = lab(seed=11)
    for driver in (plain, packed):
        driver.lamp(True)
    packed.set_compression(True)
    np.testing.assert_array_equal(packed.acquire(), plain.acquire())
    assert packed.last_frame is not None and packed.last_frame.compressed


def test_decompress_reads_the_documented_encoding():
    golden = bytes.fromhex("8003E8 05 97 80044C 00 7F 808080")
    values, used = decompress(golden + b"\xff\xfd", 7)
    assert values.tolist() == [1000, 1005, 900, 1100, 1100, 1227, 0x8080]
    assert used == len(golden)
    with pytest.raises(ValueError, match="after 6 of 7"):
        decompress(golden[:-3], 7)


def test_decompress_inverts_the_emulator_compression():
    rng = np.random.default_rng(0)
    for _ in range(50):
        values = np.clip(np.cumsum(rng.integers(-300, 300, 500)) + 30000, 0, 65535)
        values[rng.integers(0, 500, 5)] = 0x8080
        np.testing.assert_array_equal(decompress(compress(values), 500)[0], values)


def test_a_long_exposure_is_waited_for_in_lab_time(lab):
    # 60 s of lab time at 100x is 0.6 wall seconds: longer than io_timeout, and fine.
    _, driver = lab(io_timeout=0.3, clock=ScaledClock(100))
    driver.set_integration_time(60_000)
    assert driver.acquire().shape == (2048,)


def test_the_driver_takes_an_instrument_left_in_ascii_mode(lab):
    emulator, driver = lab()
    emulator.ascii_mode = True
    assert driver.identify().firmware == "3.01.0"
    assert not emulator.ascii_mode


def test_models_agree_with_the_emulator():
    for name, spec in SPECS.items():
        model = MODELS[name]
        assert (spec.pixels, spec.full_scale, spec.min_integration_ms) == (
            model.pixels,
            model.full_scale,
            model.min_integration_ms,
        )


# --------------------------------------------------------------------------- limits


@pytest.mark.parametrize(
    ("call", "value", "name"),
    [
        ("set_integration_time", 2, "integration_time"),  # USB2000: at least 3 ms
        ("set_integration_time", 70_000, "integration_time"),
        ("set_averaging", 0, "scans_to_average"),
        ("set_averaging", 5001, "scans_to_average"),
        ("set_boxcar", 16, "boxcar"),
        ("set_boxcar", -1, "boxcar"),
    ],
)
def test_out_of_range_settings_are_refused_before_the_wire(lab, call, value, name):
    emulator, driver = lab(model="usb2000")
    driver.connect()
    before = list(emulator.log)
    with pytest.raises(LimitError, match=name) as err:
        getattr(driver, call)(value)
    assert err.value.value == value
    assert list(emulator.log) == before


def test_fractional_milliseconds_are_refused(lab):
    emulator, driver = lab()
    with pytest.raises(ValueError, match="whole milliseconds"):
        driver.set_integration_time(10.5)
    assert not emulator.log


def test_bad_constructor_arguments_are_named():
    with pytest.raises(ValueError, match="model 'usb9000'"):
        OceanOpticsSerial("/dev/ttyS0", model="usb9000")
    with pytest.raises(ValueError, match="baudrate 1234"):
        OceanOpticsSerial("/dev/ttyS0", baudrate=1234)
    with pytest.raises(ValueError, match="io_timeout"):
        OceanOpticsSerial("/dev/ttyS0", io_timeout=0)


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("url", URLS)
def test_no_reply_is_a_timeout(lab, url):
    emulator, driver = lab(url, io_timeout=0.2)
    driver.connect()
    emulator.faults.no_reply = True
    with pytest.raises(InstrumentTimeout, match="no complete reply to A 3"):
        driver.set_averaging(3)
    emulator.faults.no_reply = False
    driver.set_averaging(3)
    assert emulator.values["A"] == 3


def test_a_late_reply_within_the_timeout_is_fine_and_beyond_it_a_timeout(lab):
    emulator, driver = lab(io_timeout=0.5)
    driver.connect()
    emulator.faults.reply_delay_s = 0.1
    driver.set_averaging(2)
    emulator.faults.reply_delay_s = 0.8
    with pytest.raises(InstrumentTimeout):
        driver.set_boxcar(1)
    emulator.faults.reply_delay_s = 0
    driver.set_boxcar(3)  # the late ACK to B 1 is not taken for this one's
    assert driver.query("B") == emulator.values["B"] == 3


@pytest.mark.parametrize("url", URLS)
def test_garbage_is_a_protocol_error(lab, url):
    emulator, driver = lab(url)
    driver.lamp(True)
    driver.acquire()
    emulator.faults.garbage = True
    with pytest.raises(ProtocolError, match="expected STX"):
        driver.acquire()
    with pytest.raises(ProtocolError, match="expected ACK"):
        driver.set_averaging(2)
    emulator.faults.garbage = False
    assert driver.acquire().shape == (2048,)


def test_nak_and_etx_are_instrument_faults(lab):
    emulator, driver = lab()
    driver.connect()
    driver.set_integration_time(20)
    driver.set_averaging(1)
    driver.set_compression(False)
    emulator.faults.nak = True
    with pytest.raises(InstrumentFault) as err:
        driver.set_averaging(4)
    assert err.value.reason == "NAK"
    with pytest.raises(InstrumentFault) as err:
        driver.acquire()
    assert err.value.reason == "ETX"


def test_saturation_is_data_not_an_error(lab):
    emulator, driver = lab(model="usb2000")
    driver.lamp(True)
    emulator.faults.saturation = True
    counts = driver.acquire()
    assert driver.saturated(counts)
    assert counts.max() == driver.full_scale == 4095
    emulator.faults.saturation = False
    assert not driver.saturated(driver.acquire())


def test_a_dropped_connection_is_lost_and_the_next_call_reconnects(lab):
    emulator, driver = lab("socket://127.0.0.1:0")
    driver.lamp(True)
    emulator.faults.drop_connection = True
    with pytest.raises(ConnectionLost, match="lost"):
        driver.set_averaging(2)
    emulator.faults.drop_connection = False
    driver.set_averaging(2)
    assert emulator.values["A"] == 2
    assert driver.acquire().shape == (2048,)


def test_a_dropped_serial_line_is_a_timeout(lab):
    emulator, driver = lab(io_timeout=0.2)
    driver.connect()
    emulator.faults.drop_connection = True
    with pytest.raises(InstrumentTimeout):
        driver.identify()


@pytest.mark.parametrize("url", ["/dev/no-such-spectrometer", "socket://127.0.0.1:1"])
def test_an_unreachable_instrument_is_a_lost_connection(url):
    driver = OceanOpticsSerial(url, io_timeout=0.2)
    with pytest.raises(ConnectionLost, match="cannot open"):
        driver.identify()


# --------------------------------------------------------------------------- seabreeze


@pytest.mark.skipif(
    importlib.util.find_spec("seabreeze") is not None, reason="seabreeze is installed"
)
def test_usb_without_seabreeze_names_the_extra():
    with pytest.raises(BackendUnavailable, match=r"pip install athanor\[usb\]"):
        SeaBreezeSpectrometer("usb://")


def test_usb_spectrometer_on_real_seabreeze():
    pytest.importorskip("seabreeze")
    import seabreeze.spectrometers as sb

    if not sb.list_devices():
        pytest.skip("no USB spectrometer attached")
    with SeaBreezeSpectrometer("usb://") as driver:
        driver.set_integration_time(max(driver.spec.min_integration_ms, 10))
        counts = driver.acquire()
        assert counts.shape == driver.wavelengths().shape


class _FakeUSB:
    """Stands in for a USB instrument seen through ``seabreeze.spectrometers``."""

    model, serial_number, pixels, max_intensity = "USB2000PLUS", "USB2+F0001", 8, 65535.0
    integration_time_micros_limits = (1000, 65_000_000)
    opened: list[_FakeUSB] = []  # noqa: RUF012

    def __init__(self) -> None:
        self.micros, self.reads, self.lamp_on, self.closed = 0, 0, False, False
        self.f = types.SimpleNamespace(strobe_lamp=types.SimpleNamespace(enable_lamp=self._lamp))

    @classmethod
    def from_serial_number(cls, serial: str | None) -> _FakeUSB:
        dev = cls()
        cls.opened.append(dev)
        return dev

    def _lamp(self, on: bool) -> None:
        self.lamp_on = on

    def integration_time_micros(self, micros: int) -> None:
        self.micros = micros

    def intensities(self) -> np.ndarray:
        self.reads += 1
        return np.full(8, 100.0 * self.reads)

    def wavelengths(self) -> np.ndarray:
        return np.linspace(400, 700, 8)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_seabreeze(monkeypatch):
    package = types.ModuleType("seabreeze")
    module = types.ModuleType("seabreeze.spectrometers")
    setattr(module, "Spectrometer", _FakeUSB)  # noqa: B010
    setattr(package, "spectrometers", module)  # noqa: B010
    monkeypatch.setitem(sys.modules, "seabreeze", package)
    monkeypatch.setitem(sys.modules, "seabreeze.spectrometers", module)
    _FakeUSB.opened.clear()
    return _FakeUSB


def test_usb_driver_offers_the_same_interface(fake_seabreeze):
    driver = SeaBreezeSpectrometer("usb://USB2+F0001")
    assert isinstance(driver, SpectrometerDriver)
    assert driver.identify().serial_number == "USB2+F0001"
    driver.set_integration_time(2.5)
    device = fake_seabreeze.opened[0]
    assert device.micros == 2500
    with pytest.raises(LimitError, match="integration_time"):
        driver.set_integration_time(0.5)
    driver.set_averaging(3)
    assert driver.acquire().tolist() == [200.0] * 8  # mean of reads 1, 2, 3
    driver.lamp(True)
    assert device.lamp_on
    assert driver.saturated(np.array([65535.0]))
    driver.close()
    assert device.closed


def test_usb_url_must_name_usb():
    with pytest.raises(ValueError, match="usb://"):
        SeaBreezeSpectrometer("/dev/ttyUSB0")
