"""The Ocean Optics emulator, spoken to byte by byte over a pty as any serial client would.

Frames are checked against the layout in the manuals (written out here by hand), not
against the driver, so emulator and driver cannot agree on a mistake.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
import serial
from pydantic import ValidationError

from athanor.clock import ManualClock
from athanor.config_files import ConfigError, ConfigSource
from athanor.simulators import ocean_optics as oo
from athanor.simulators.hosting import BackgroundLoop
from athanor.simulators.ocean_optics import (
    MODELS,
    OceanOpticsEmulator,
    OceanOpticsSimSettings,
    compress,
    quantum_efficiency,
)
from athanor.simulators.world import OpticalProperties

ACK, NAK, STX, ETX = b"\x06", b"\x15", b"\x02", b"\x03"


class Client:
    """A plain pyserial client that types its commands one byte at a time."""

    def __init__(self, url: str) -> None:
        self.port = serial.serial_for_url(url, baudrate=9600, timeout=2.0)

    def send(self, data: bytes) -> None:
        for i in range(len(data)):
            self.port.write(data[i : i + 1])
            self.port.flush()

    def ask(self, data: bytes, n: int) -> bytes:
        self.send(data)
        return self.port.read(n)

    def silent_for(self, seconds: float) -> bool:
        self.port.timeout = seconds
        got = self.port.read(1)
        self.port.timeout = 2.0
        return got == b""

    def spectrum(self, pixels: int) -> tuple[tuple[int, ...], np.ndarray]:
        """``S``, parsed by the book: STX, 7 header words, pixels, 0xFFFD."""
        self.send(b"S")
        assert self.port.read(1) == STX
        header = struct.unpack(">7H", self.port.read(14))
        width = 4 if header[1] else 2
        data = self.port.read(width * pixels)
        assert self.port.read(2) == b"\xff\xfd"
        return header, np.frombuffer(data, ">u4" if width == 4 else ">u2").astype(np.int64)


@pytest.fixture
def lab():
    with BackgroundLoop() as loop:
        clients: list[Client] = []

        def serve(url: str = "pty://", **settings) -> tuple[OceanOpticsEmulator, Client]:
            emulator = OceanOpticsEmulator(url, settings, clock=ManualClock())
            clients.append(Client(loop.start(emulator)))
            return emulator, clients[-1]

        yield serve
        for client in clients:
            client.port.close()


def word(value: int) -> bytes:
    return struct.pack(">H", value)


# --------------------------------------------------------------------------- commands


def test_commands_with_valid_data_are_acknowledged(lab):
    emulator, c = lab(model="usb2000")
    assert c.ask(b"v", 3) == ACK + word(2040)
    for command in (b"A" + word(5), b"B" + word(3), b"G" + word(1), b"I" + word(50)):
        assert c.ask(command, 1) == ACK
    assert c.ask(b"J" + word(1), 1) == ACK
    assert c.ask(b"K" + word(3), 1) == ACK
    assert c.ask(b"?A", 3) == ACK + word(5)
    assert c.ask(b"?I", 3) == ACK + word(50)
    assert c.ask(b"?K", 3) == ACK + word(3)
    assert emulator.values == {"A": 5, "B": 3, "G": 1, "I": 50, "J": 1, "K": 3}
    assert c.ask(b"Q", 1) == ACK
    assert c.ask(b"?A", 3) == ACK + word(1)
    assert c.ask(b"?J", 3) == ACK + word(0)


@pytest.mark.parametrize(
    "command",
    [
        b"A" + word(0),
        b"A" + word(5001),
        b"B" + word(16),
        b"I" + word(2),  # the USB2000 integrates for at least 3 ms
        b"K" + word(5),
        b"Z",
        b"?Z",
        b"?x" + word(20),
        b"ab",
    ],
)
def test_out_of_range_data_and_unknown_commands_get_nak(lab, command):
    emulator, c = lab(model="usb2000")
    before = dict(emulator.values)
    assert c.ask(command, 1) == NAK
    assert emulator.values == before
    assert c.ask(b"v", 3) == ACK + word(2040)  # still in step


def test_integration_time_limits_follow_the_model(lab):
    _, c = lab(model="usb4000")
    assert c.ask(b"I" + word(1), 1) == ACK
    assert c.ask(b"I" + word(65535), 1) == ACK
    assert c.ask(b"I" + word(0), 1) == NAK


def test_ascii_mode_echoes_and_takes_decimal_text(lab):
    _, c = lab(model="usb2000plus")
    assert c.ask(b"aA", 1) == ACK
    assert c.ask(b"A10\r", 5) == b"A10\r" + ACK
    assert c.ask(b"?A", 7) == b"?A" + ACK + b"10\r\n"
    assert c.ask(b"v", 8) == b"v" + ACK + b"3010\r\n"
    assert c.ask(b"A0\r", 4) == b"A0\r" + NAK
    assert c.ask(b"I7x\r", 5) == b"I7x\r" + NAK
    assert c.ask(b"bB", 3) == b"bB" + ACK
    assert c.ask(b"?A", 3) == ACK + word(10)


def test_ascii_mode_spectrum_is_one_decimal_word_per_line(lab):
    _, c = lab(model="usb2000")
    c.ask(b"aA", 1)
    c.send(b"S")
    assert c.port.read(2) == b"S" + STX
    lines = [c.port.readline() for _ in range(7 + 2048 + 1)]
    assert all(line.endswith(b"\r\n") for line in lines)
    words = [int(line) for line in lines]
    assert words[:7] == [0xFFFF, 0, 1, 100, 0, 90, 0]
    assert words[-1] == 0xFFFD
    assert c.silent_for(0.05)


def test_configuration_slots_hold_serial_number_and_calibration(lab):
    _, c = lab(model="usb2000plus", serial_number="USB2+H12345")
    assert c.ask(b"?x" + word(0), 17) == ACK + b"USB2+H12345".ljust(16, b"\0")
    coefficients = []
    for slot in (1, 2, 3, 4):
        reply = c.ask(b"?x" + word(slot), 17)
        assert reply[:1] == ACK
        coefficients.append(float(reply[1:].rstrip(b"\0")))
    assert coefficients == pytest.approx(MODELS["usb2000plus"].coefficients, rel=1e-7)


def test_a_command_whose_data_never_arrive_is_dropped(lab, monkeypatch):
    monkeypatch.setattr(oo, "INTERBYTE_S", 0.1)
    _, c = lab(model="usb2000")
    c.send(b"A\x00")
    assert c.silent_for(0.3)
    assert c.ask(b"v", 3) == ACK + word(2040)


# --------------------------------------------------------------------------- frames


def test_binary_frame_layout_is_byte_exact(lab):
    _, c = lab(model="usb2000")  # bias 90 counts = 0x005A
    c.send(b"S")
    reply = c.port.read(1 + 14 + 2 * 2048 + 2)
    assert reply[:15] == bytes.fromhex("02 FFFF 0000 0001 0064 0000 005A 0000")
    assert reply[-2:] == bytes.fromhex("FFFD")
    assert c.silent_for(0.05)

    c.ask(b"A" + word(3), 1)
    c.ask(b"I" + word(20), 1)
    c.send(b"S")
    reply = c.port.read(1 + 14 + 4 * 2048 + 2)
    assert reply[:15] == bytes.fromhex("02 FFFF 0001 0003 0014 0000 005A 0000")
    assert reply[-2:] == bytes.fromhex("FFFD")
    assert c.silent_for(0.05)


def test_compression_follows_the_documented_rule():
    # 1000 in full; +5; -105 (0x97); +200 does not fit a byte: 0x80 and the value; 0;
    # +127 still fits; a jump back to 0x8080 in full.
    values = np.array([1000, 1005, 900, 1100, 1100, 1227, 0x8080])
    assert compress(values) == bytes.fromhex("8003E8 05 97 80044C 00 7F 808080")


def decode_compressed(port: serial.SerialBase, pixels: int) -> np.ndarray:
    out: list[int] = []
    prev = 0
    while len(out) < pixels:
        b = port.read(1)[0]
        if b == 0x80:
            prev = struct.unpack(">H", port.read(2))[0]
        else:
            prev += b - 256 if b > 127 else b
        out.append(prev)
    return np.array(out)


def test_compressed_spectrum_decodes_to_the_uncompressed_one(lab):
    _, plain = lab(model="usb2000plus", seed=3)
    _, packed = lab(model="usb2000plus", seed=3)
    for c in (plain, packed):
        c.ask(b"J" + word(1), 1)
    packed.ask(b"G" + word(1), 1)
    _, expected = plain.spectrum(2048)
    packed.send(b"S")
    assert packed.port.read(15) == bytes.fromhex("02 FFFF 0000 0001 0064 0000 03E8 0000")
    decoded = decode_compressed(packed.port, 2048)
    assert packed.port.read(2) == b"\xff\xfd"
    np.testing.assert_array_equal(decoded, expected)


def test_the_same_seed_gives_the_same_bytes(lab):
    frames = []
    for seed in (5, 5, 6):
        _, c = lab(model="flame", seed=seed)
        c.ask(b"J" + word(1), 1)
        c.send(b"S")
        frames.append(c.port.read(1 + 14 + 2 * 2048 + 2))
    assert frames[0] == frames[1]
    assert frames[0] != frames[2]


def test_the_same_stream_is_served_over_tcp(lab):
    _, c = lab("socket://127.0.0.1:0", model="usb4000")
    assert c.ask(b"v", 3) == ACK + word(3000)
    header, values = c.spectrum(3648)
    assert header[:4] == (0xFFFF, 0, 1, 100)
    assert values.shape == (3648,)


def test_a_port_in_use_is_a_clear_error(lab):
    first, _ = lab("socket://127.0.0.1:0")
    port = int(emulator_url(first).rsplit(":", 1)[1])
    with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
        lab(f"socket://127.0.0.1:{port}")


# --------------------------------------------------------------------------- detector


def test_dark_counts_are_bias_plus_dark_current(lab):
    settings = OceanOpticsSimSettings(model="usb2000plus", dark_current=500, read_noise=50)
    _, c = lab(**settings.model_dump())
    c.ask(b"I" + word(10_000), 1)  # 10 s, lamp off
    _, values = c.spectrum(2048)
    gain, bias = MODELS["usb2000plus"].gain, MODELS["usb2000plus"].bias
    assert values.mean() == pytest.approx(bias + gain * 500 * 10, rel=0.005)
    assert values.std() == pytest.approx(gain * np.sqrt(500 * 10 + 50**2), rel=0.1)


@pytest.mark.parametrize(("model", "full_scale"), [("usb2000", 4095), ("usb2000plus", 65535)])
def test_saturation_clips_at_full_scale(lab, model, full_scale):
    _, c = lab(model=model)
    c.ask(b"J" + word(1), 1)
    c.ask(b"I" + word(1000), 1)  # 10x the exposure that fills 70 %
    _, values = c.spectrum(2048)
    assert values.max() == full_scale
    assert (values == full_scale).sum() > 100
    c.ask(b"A" + word(4), 1)
    _, summed = c.spectrum(2048)
    assert summed.max() == 4 * full_scale


def test_shot_noise_grows_as_the_square_root_of_the_signal(lab):
    emulator, c = lab(model="usb2000plus", read_noise=0)
    c.ask(b"J" + word(1), 1)
    frames = np.array([c.spectrum(2048)[1] for _ in range(8)], dtype=float)
    signal = emulator.expected_counts() - MODELS["usb2000plus"].bias
    variance = frames.var(axis=0, ddof=1)
    # Poisson electrons: variance in counts = gain x signal, at every level of signal.
    gain = MODELS["usb2000plus"].gain
    bright = signal > np.median(signal)
    for part in (bright, ~bright):
        assert variance[part].sum() / signal[part].sum() == pytest.approx(gain, rel=0.1)


def test_averaging_and_boxcar_reduce_the_noise(lab):
    _, c = lab(model="usb2000plus")
    c.ask(b"J" + word(1), 1)

    def noise() -> float:
        (h1, a), (_, b) = c.spectrum(2048), c.spectrum(2048)
        return float(np.std((a - b) / h1[2]))

    single = noise()
    c.ask(b"A" + word(16), 1)
    assert noise() / single == pytest.approx(1 / 4, rel=0.15)
    c.ask(b"A" + word(1), 1)
    c.ask(b"B" + word(2), 1)  # 5 pixels averaged
    assert noise() / single == pytest.approx(1 / np.sqrt(5), rel=0.15)


# --------------------------------------------------------------------------- light path


def measure(emulator: OceanOpticsEmulator, c: Client, *, lamp: bool) -> np.ndarray:
    c.ask(b"J" + word(int(lamp)), 1)
    return c.spectrum(emulator.spec.pixels)[1].astype(float)


def test_transmission_through_a_sample_follows_its_band_gap(lab):
    emulator, c = lab(model="usb2000plus")
    gap = 2.5
    dark = measure(emulator, c, lamp=False)
    reference = measure(emulator, c, lamp=True)
    emulator.load(OpticalProperties(band_gap_ev=gap, urbach_ev=0.04, absorbance_scale=3.0))
    sample = measure(emulator, c, lamp=True)
    t = (sample - dark) / (reference - dark)
    energy = 1239.84 / emulator.wavelengths
    above = (energy > gap + 0.3) & (energy < gap + 1.0)
    below = (energy < gap - 0.4) & (emulator.wavelengths < 900)
    assert np.median(t[above]) < 0.01
    assert np.median(t[below]) == pytest.approx(1.0, abs=0.02)

    # Tauc: (A E)^2 is linear in E above the gap, with its intercept at the gap.
    a = -np.log10(np.clip(t, 1e-6, None))
    fit = (a > 0.3) & (a < 2.0) & (energy > gap)
    slope, intercept = np.polyfit(energy[fit], (a[fit] * energy[fit]) ** 2, 1)
    assert -intercept / slope == pytest.approx(gap, abs=0.03)


def test_photoluminescence_peaks_where_the_sample_emits(lab):
    emulator, c = lab(model="usb2000plus", geometry="photoluminescence")
    emulator.load(OpticalProperties(band_gap_ev=2.6, pl_peak_ev=2.3, pl_fwhm_ev=0.15, pl_yield=0.5))
    signal = measure(emulator, c, lamp=True) - measure(emulator, c, lamp=False)
    wavelengths = emulator.wavelengths
    assert wavelengths[np.argmax(signal)] == pytest.approx(1239.84 / 2.3, abs=2.0)
    per_ev = signal * wavelengths**2 / 1239.84 / quantum_efficiency(wavelengths)
    assert 1239.84 / wavelengths[np.argmax(per_ev)] == pytest.approx(2.3, abs=0.01)
    assert signal.max() > 1000


def test_no_photoluminescence_without_absorbed_excitation(lab):
    emulator, c = lab(model="usb2000plus", geometry="photoluminescence")
    # A 4 eV gap does not absorb the 365 nm (3.4 eV) excitation.
    emulator.load(OpticalProperties(band_gap_ev=4.0, pl_peak_ev=2.3, pl_fwhm_ev=0.15, pl_yield=0.5))
    signal = measure(emulator, c, lamp=True) - measure(emulator, c, lamp=False)
    assert np.abs(signal).max() < 200  # noise only


def test_impossible_optics_are_refused_by_name(lab):
    emulator, _ = lab()
    with pytest.raises(ValueError, match="band_gap_ev = -1"):
        emulator.load(OpticalProperties(band_gap_ev=-1.0))
    with pytest.raises(ValueError, match="pl_fwhm_ev"):
        emulator.load(OpticalProperties(band_gap_ev=2.0, pl_peak_ev=2.0, pl_fwhm_ev=0, pl_yield=1))
    with pytest.raises(ValueError, match="geometry 'reflection'"):
        emulator.geometry = "reflection"


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"read_noise": -1}, "read_noise"),
        ({"dark_current": -5}, "dark_current"),
        ({"gain": 0}, "gain"),
        ({"model": "usb2000", "bias": 5000}, "bias = 5000"),
        ({"wavelength_coefficients": [900, -0.3, 0, 0]}, "increase monotonically"),
        ({"faults": {"reply_delay_s": -1}}, "reply_delay_s"),
        ({"faults": {"lose_replies": -1}}, "lose_replies"),
        ({"firmware": {"scan_mode": "median"}}, "scan_mode"),
        ({"firmware": {"pace_baud": 10}}, "pace_baud"),
        ({"lamp_wattage": 20}, "lamp_wattage"),
    ],
)
def test_impossible_settings_are_clear_errors(settings, message):
    with pytest.raises(ValidationError, match=message):
        OceanOpticsSimSettings.model_validate(settings)


def test_a_lab_yaml_sim_block_validates_with_line_numbers():
    source = ConfigSource.parse(
        "instruments:\n"
        "  uvvis:\n"
        "    kind: spectrometer\n"
        "    sim:\n"
        "      seed: 4\n"
        "      read_noise: -3\n"
    )
    with pytest.raises(ConfigError, match=r"<string>:6: instruments\.uvvis\.sim\.read_noise"):
        source.validate(OceanOpticsSimSettings, ("instruments", "uvvis", "sim"))


def test_firmware_variants_and_faults_come_from_the_lab_yaml_sim_block():
    source = ConfigSource.parse(
        "instruments:\n"
        "  uvvis:\n"
        "    sim:\n"
        "      firmware: {nak_slot_queries: true, scan_mode: average, pace_baud: 9600}\n"
        "      faults: {ignore_integration_time: true, lose_replies: 2}\n"
    )
    settings = source.validate(OceanOpticsSimSettings, ("instruments", "uvvis", "sim"))
    emulator = OceanOpticsEmulator("pty://", settings)
    assert (emulator.firmware.nak_slot_queries, emulator.firmware.scan_mode) == (True, "average")
    assert emulator.firmware.pace_baud == 9600
    assert emulator.faults.ignore_integration_time and emulator.faults.lose_replies == 2


def test_settings_take_the_model_from_the_instrument_config():
    settings = OceanOpticsSimSettings(seed=3).for_model("usb4000")
    assert (settings.model, settings.seed, settings.spec.pixels) == ("usb4000", 3, 3648)
    with pytest.raises(ValidationError, match="bias = 5000"):
        OceanOpticsSimSettings(bias=5000).for_model("usb2000")


def test_unknown_connection_scheme_is_refused():
    with pytest.raises(ValueError, match="pty:// or socket://"):
        OceanOpticsEmulator("modbus-tcp://127.0.0.1:0")


# --------------------------------------------------------------------------- faults


def test_no_reply_fault_silences_the_instrument(lab):
    emulator, c = lab(faults={"no_reply": True})
    c.send(b"v")
    assert c.silent_for(0.2)
    emulator.faults.no_reply = False
    assert c.ask(b"v", 3)[:1] == ACK


def test_late_reply_fault_delays_every_reply(lab):
    emulator, c = lab()
    emulator.faults.reply_delay_s = 0.4
    c.send(b"v")
    assert c.silent_for(0.1)
    assert c.port.read(3)[:1] == ACK


def test_garbage_fault_replaces_replies(lab):
    emulator, c = lab()
    emulator.faults.garbage = True
    reply = c.ask(b"A" + word(2), 1)
    assert reply not in (ACK, NAK, b"")
    c.send(b"S")
    assert c.port.read(1) not in (STX, ETX, b"")


def test_nak_fault_refuses_everything(lab):
    emulator, c = lab(faults={"nak": True})
    assert c.ask(b"A" + word(2), 1) == NAK
    assert c.ask(b"v", 1) == NAK
    assert c.ask(b"S", 1) == ETX
    assert emulator.values["A"] == 1


def test_saturation_fault_floods_the_detector(lab):
    emulator, c = lab(model="usb2000")
    emulator.faults.saturation = True
    c.ask(b"J" + word(1), 1)
    _, values = c.spectrum(2048)
    assert (values == 4095).mean() > 0.5


def test_dropped_connection_fault_closes_the_tcp_link(lab):
    emulator, c = lab("socket://127.0.0.1:0")
    emulator.faults.drop_connection = True
    c.send(b"v")
    with pytest.raises(serial.SerialException):
        c.port.read(1)
    emulator.faults.drop_connection = False
    again = Client(emulator_url(emulator))
    assert again.ask(b"v", 3)[:1] == ACK
    again.port.close()


def test_dropped_connection_on_a_serial_line_is_silence(lab):
    emulator, c = lab()
    emulator.faults.drop_connection = True
    c.send(b"v")
    assert c.silent_for(0.2)


def emulator_url(emulator: OceanOpticsEmulator) -> str:
    host, port = emulator._server.sockets[0].getsockname()[:2]
    return f"socket://{host}:{port}"


def test_acquisition_takes_its_exposure_in_lab_time():
    clock = ManualClock()
    with BackgroundLoop() as loop:
        emulator = OceanOpticsEmulator("pty://", {"model": "usb2000"}, clock=clock)
        c = Client(loop.start(emulator))
        c.ask(b"I" + word(2000), 1)
        c.ask(b"A" + word(3), 1)
        before = clock.now()
        c.spectrum(2048)
        assert clock.now() - before == pytest.approx(6.0)
        c.port.close()


# --------------------------------------------------------------------------- firmware variants


def test_a_unit_without_slot_queries_refuses_the_query_and_each_byte_after_it(lab):
    _, c = lab(model="usb2000", firmware={"nak_slot_queries": True})
    assert c.ask(b"?x" + word(1), 3) == NAK + NAK + NAK
    assert c.silent_for(0.05)
    assert c.ask(b"v", 3) == ACK + word(2040)


def test_firmware_that_averages_sends_word_means(lab):
    _, summing = lab(model="usb2000plus", seed=4)
    _, averaging = lab(model="usb2000plus", seed=4, firmware={"scan_mode": "average"})
    for c in (summing, averaging):
        c.ask(b"J" + word(1), 1)
        c.ask(b"A" + word(4), 1)
        c.ask(b"I" + word(20), 1)
    _, sums = summing.spectrum(2048)
    averaging.send(b"S")
    assert averaging.port.read(15) == bytes.fromhex("02 FFFF 0000 0004 0014 0000 03E8 0000")
    means = np.frombuffer(averaging.port.read(2 * 2048), ">u2")
    assert averaging.port.read(2) == b"\xff\xfd"
    np.testing.assert_array_equal(means, np.rint(sums / 4))


def test_an_ignored_integration_time_is_acknowledged_and_not_applied(lab):
    emulator, c = lab(model="usb2000", faults={"ignore_integration_time": True})
    assert c.ask(b"I" + word(40), 1) == ACK
    assert c.ask(b"I" + word(2), 1) == NAK  # out of range is still refused
    assert c.ask(b"?I", 3) == ACK + word(100)
    header, _ = c.spectrum(2048)
    assert header[3] == 100
    emulator.faults.ignore_integration_time = False
    assert c.ask(b"I" + word(40), 1) == ACK
    assert c.spectrum(2048)[0][3] == 40


def test_a_lost_reply_is_performed_and_never_sent(lab):
    emulator, c = lab(faults={"lose_replies": 1})
    c.send(b"A" + word(3))
    assert c.silent_for(0.2)
    assert emulator.faults.lose_replies == 0
    assert c.ask(b"?A", 3) == ACK + word(3)


def test_replies_paced_at_a_line_speed_carry_the_same_bytes(lab):
    _, fast = lab(model="usb2000plus", seed=8)
    _, paced = lab(model="usb2000plus", seed=8, firmware={"pace_baud": 115200})
    frames = []
    for c in (fast, paced):
        c.ask(b"J" + word(1), 1)
        c.send(b"S")
        frames.append(c.port.read(1 + 14 + 2 * 2048 + 2))
    assert frames[0] == frames[1]
    assert len(frames[1]) == 1 + 14 + 2 * 2048 + 2
