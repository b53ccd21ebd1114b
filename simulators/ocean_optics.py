"""An Ocean Optics spectrometer (USB2000, USB2000+, USB4000, Flame) on its RS-232 command set.

The emulator serves the serial command set over a pseudo-terminal (``pty://``; clients open
the returned ``/dev/pts/N``) or over raw TCP carrying the same byte stream
(``socket://127.0.0.1:PORT``, port 0 = any free port; pyserial opens it as ``socket://``).
Behind the wire sit a detector model and a light path, so the spectra are what a real
instrument would record from the sample in its beam.

Wire protocol (as in ``reference/instruments.md`` and the Flame/USB2000 manuals)
-------------------------------------------------------------------------------
One ASCII letter per command, then its data. Binary data mode (the power-up default):
data are 16-bit words, most significant byte first. ASCII mode (``aA``): every received
byte is echoed, data are decimal text ended by CR or LF, and every word the binary mode
would send goes out as decimal text ended by CR LF; ``bB`` returns to binary. Every
command is answered ACK (0x06) or NAK (0x15):

=======  ===============================================  ============================
``A n``  scans to add, 1-5000                             ACK / NAK (out of range)
``B n``  pixel boxcar half-width, 0-15                    ACK / NAK
``G n``  data compression, 0 = off, else on               ACK
``I n``  integration time, ms, model minimum-65535        ACK / NAK
``J n``  lamp-enable line, 0 = off, else on               ACK
``K n``  baud code 0-4, 6 (2400 ... 38400, 115200)        ACK / NAK
``Q``    initialise: A1 B0 G0 I100 J0 (data mode kept)    ACK
``S``    acquire                                          STX + frame, or ETX
``?L``   query setting L (A B G I J K)                    ACK + WORD / NAK
``?x n`` query configuration slot n (0-19), see below     ACK + 16 bytes / NAK
``v``    firmware version (1000 = 1.00.0)                 ACK + WORD
=======  ===============================================  ============================

Unknown letters get NAK. The spectrum frame after STX is: WORD 0xFFFF; WORD data size
(0 = WORD pixels, 1 = DWORD pixels: sent whenever A > 1, as the manual says, unless the
firmware averages, below); WORD scans accumulated; WORD integration time (ms); WORD
baseline MSW; WORD baseline LSW (the detector's electrical offset in counts per scan);
WORD pixel mode (always 0: all pixels); the pixel values; WORD 0xFFFD. With compression
on, WORD pixel data are sent as a signed byte holding the difference from the previous
pixel when it fits in -127..127, else 0x80 followed by the full 16-bit value; the first
pixel is always sent in full. DWORD data and ASCII-mode spectra are never compressed.

Wavelength calibration. The instruments keep it in EEPROM configuration slots (0 serial
number, 1-4 the coefficients c0..c3 of the 3rd-order polynomial, 5 stray light, 6-13
non-linearity coefficients, 14 their order, 15-16 bench and detector, 17 reserved,
18 power-up baud, 19 user), each as ASCII text (USB2000/Apex/EMBED2000 data sheets); the
USB "query information" command returns a slot as 16 ASCII bytes. The serial command set
we could verify has no calibration query, so the emulator answers ``?x`` + WORD slot with
ACK and the slot's text NUL-padded to 16 bytes (in ASCII mode: the text and CR LF), the
USB reply carried over: an assumption to check against a real serial firmware (the
driver also accepts the coefficients from a calibration sheet). Wavelengths are
``λ(p) = c0 + c1 p + c2 p² + c3 p³`` for pixel p. Writing slots (``x``) is not emulated.
Line speed (``K``) has no effect on a pty or TCP.

Emulation choices the manuals leave open: a command whose data stop arriving for
:data:`INTERBYTE_S` wall seconds is dropped without reply; bare CR/LF between commands in
ASCII mode is ignored; ``S`` occupies the instrument for integration time × scans of lab
time (on the emulator's clock); bytes leave as fast as the link takes them.

Firmware variants (:class:`OceanOpticsFirmware`, the ``firmware:`` block of the settings,
at run time on ``emulator.firmware``) play what real units do where the manuals are
silent: ``nak_slot_queries`` (no EEPROM slot query: ``?x`` is refused at once and the slot
WORD read as two more commands, each refused), ``scan_mode: average`` (``A`` > 1 sends
the rounded mean as WORD pixels, data size 0) and ``pace_baud`` (replies leave at a
serial line's speed, 10 bits a byte of wall time).

Detector and light path (the exact model, so analysis can recover it)
--------------------------------------------------------------------
For pixel p at wavelength λ (nm), photon energy E = 1239.84 / λ (eV), pixel width
dλ = c1 + 2 c2 p + 3 c3 p², one scan of t seconds yields::

    electrons  N ~ Poisson(QE(λ) Φ(λ) t + D t)
    counts       = clip(round(g N + bias + Normal(0, g σ_read)), 0, full scale)

with QE(λ) = 0.05 + 0.55 exp(-½((λ - 560)/190)²), dark current D (e⁻/s), gain g
(counts/e⁻), read noise σ_read (e⁻ rms) and full scale 4095 (12-bit) or 65535 (16-bit).
``A`` scans are clipped one by one and summed (the frame carries the sum; divide by the
scans word for the average; firmware that averages sends that mean, rounded). ``B`` = b
then replaces each pixel of the sum by the mean of pixels p-b..p+b (fewer at the ends),
rounded.

Φ(λ), photons per second reaching pixel p, depends on the geometry and the J line:

* transmission geometry, lamp on (J1): Φ = P · S_lamp(λ) dλ · T(λ). The lamp is a
  deuterium-halogen source: a 3000 K Planck photon spectrum, a deuterium continuum
  exp(-(λ - 200)/60) for the UV and the D-α (656.1 nm) and D-β (486.0 nm) lines; it is
  scaled so that at lamp power P = 1 the empty beam fills 70 % of the counts above bias
  at 100 ms where QE·S_lamp·dλ peaks.
* photoluminescence geometry, excitation on (J1): Φ = P_x · K · Y · (1 - T(λ_x)) ·
  G(E) · 1239.84/λ² · dλ: the sample's emission, a Gaussian G in energy (area 1/eV, peak
  E_pl, FWHM W) with yield Y, excited at λ_x (365 nm by default) with the absorbed
  fraction 1 - T(λ_x). K fills 70 % at 100 ms for Y = 1, W = 0.15 eV at 2.5 eV. To read
  the emission in energy, multiply counts by λ²/1239.84 (the Jacobian) and divide by QE.
* J0 (lamp or excitation off, shutter closed): Φ = 0, only dark current.

The sample (:class:`~athanor.simulators.world.OpticalProperties`) sets
T(λ) = 10^(-A(E)) with a direct gap Eg and an Urbach tail of width Eu::

    g(E) = √(E - Eg) / E                          for E ≥ Eg + x_t
    g(E) = g(Eg + x_t) · exp((E - Eg - x_t) / Eu)  below,
    A(E) = absorbance_scale · g(E) / g(Eg + 0.5)

where x_t = (√((2Eg + Eu)² + 8 Eu Eg) - (2Eg + Eu)) / 4 joins the two with a continuous
slope. Above the join (A E)² is linear in E with intercept Eg: a Tauc plot recovers the
gap. No sample (``load(None)``) is T = 1: the reference.

The saturation fault multiplies Φ by 100. Seeded: the same seed and the same commands
give the same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import numpy as np
from pydantic import Field, model_validator

from athanor.clock import Clock, WallClock
from athanor.schema import StrictModel

from .hosting import PtyLink
from .world import OpticalProperties

ACK, NAK, STX, ETX = 0x06, 0x15, 0x02, 0x03
FRAME_START, FRAME_END = 0xFFFF, 0xFFFD
HC_EV_NM = 1239.84
INTERBYTE_S = 2.0
"""Wall seconds the emulator waits for the rest of a command before dropping it."""
WRITE_STALL_S = 5.0
"""Wall seconds a pty reply may wait for the client to read before the rest is dropped."""

SCANS_RANGE = (1, 5000)
BOXCAR_RANGE = (0, 15)
BAUD_CODES = {0: 2400, 1: 4800, 2: 9600, 3: 19200, 4: 38400, 6: 115200}
DEFAULTS = {"A": 1, "B": 0, "G": 0, "I": 100, "J": 0, "K": 2}
_FILL = 0.7  # nominal sources fill this fraction of the range above bias ...
_NOMINAL_S = 0.1  # ... at this integration time (s)


@dataclass(frozen=True)
class DetectorModel:
    """Facts of one spectrometer model (datasheets) and its emulated defaults."""

    name: str
    pixels: int
    bits: int
    min_integration_ms: int
    gain: float  # counts per electron
    bias: float  # counts
    firmware: int
    coefficients: tuple[float, float, float, float]
    max_integration_ms: int = 65535

    @property
    def full_scale(self) -> int:
        return 2**self.bits - 1


MODELS: dict[str, DetectorModel] = {
    m.name: m
    for m in (
        DetectorModel("usb2000", 2048, 12, 3, 0.04, 90.0, 2040, (200.0, 0.3794, -1.6e-5, -2.0e-10)),
        DetectorModel(
            "usb2000plus", 2048, 16, 1, 0.16, 1000.0, 3010, (186.5, 0.4012, -1.9e-5, -1.1e-10)
        ),
        DetectorModel("usb4000", 3648, 16, 1, 0.16, 1000.0, 3000, (178.0, 0.2185, -5.1e-6, -3e-11)),
        DetectorModel("flame", 2048, 16, 1, 0.16, 1000.0, 3030, (177.5, 0.4245, -2.3e-5, 1.0e-10)),
    )
}
ModelName = Literal["usb2000", "usb2000plus", "usb4000", "flame"]
Geometry = Literal["transmission", "photoluminescence"]


# --------------------------------------------------------------------------- settings


class OceanOpticsFaults(StrictModel):
    """Fault switches; change them at run time on ``emulator.faults``."""

    no_reply: bool = Field(False, description="read commands, answer nothing")
    reply_delay_s: float = Field(0.0, ge=0, le=60, description="wall seconds before each reply")
    garbage: bool = Field(False, description="replace every reply by random bytes")
    nak: bool = Field(False, description="answer NAK to every command (ETX to S)")
    saturation: bool = Field(False, description="light source 100x too bright")
    drop_connection: bool = Field(
        False, description="close the TCP connection on the next command (pty: no reply)"
    )
    ignore_integration_time: bool = Field(
        False, description="acknowledge I with a valid time, keep the old one"
    )
    lose_replies: int = Field(
        0,
        ge=0,
        le=1_000_000,
        description="the next N replies are never sent; the commands are carried out",
    )


class OceanOpticsFirmware(StrictModel):
    """How this unit differs from another where the documented facts are silent.

    Each switch plays one variant; change them at run time on ``emulator.firmware``.
    """

    nak_slot_queries: bool = Field(
        False,
        description="no EEPROM slot query: ?x is NAKed at once and the slot WORD after it is "
        "read as two unknown commands, each NAKed",
    )
    scan_mode: Literal["sum", "average"] = Field(
        "sum",
        description="A > 1: 'sum' sends DWORD sums (data size 1), 'average' WORD rounded "
        "means (data size 0)",
    )
    pace_baud: int | None = Field(
        None,
        ge=300,
        le=1_000_000,
        description="replies leave at this line speed, 10 bits a byte of wall time "
        "(None: as fast as the link takes them)",
    )


class OceanOpticsSimSettings(StrictModel):
    """The ``sim:`` block of a spectrometer in a lab YAML: detector, light and faults.

    ``gain`` and ``bias`` default to the model's values (``None``). A lab assembly
    validates the block with ``ConfigSource.validate(OceanOpticsSimSettings, loc)`` and
    takes the instrument's ``model`` with :meth:`for_model`.
    """

    model: ModelName = "usb2000plus"
    seed: int = 0
    gain: float | None = Field(None, gt=0, le=100, description="counts per photo-electron")
    bias: float | None = Field(None, ge=0, description="electrical offset, counts")
    dark_current: float = Field(500.0, ge=0, le=1e7, description="electrons per second per pixel")
    read_noise: float = Field(50.0, ge=0, le=1e5, description="electrons rms per read")
    lamp_power: float = Field(1.0, ge=0, le=1e4, description="1: empty beam fills 70% at 100 ms")
    lamp_temperature_k: float = Field(3000.0, ge=1500, le=3500, description="halogen filament")
    geometry: Geometry = "transmission"
    excitation_nm: float = Field(365.0, ge=200, le=700, description="excitation wavelength")
    excitation_power: float = Field(1.0, ge=0, le=1e4, description="1: nominal excitation")
    wavelength_coefficients: tuple[float, float, float, float] | None = Field(
        None, description="c0..c3 of λ(p) = c0 + c1 p + c2 p² + c3 p³, nm; None: the model's"
    )
    serial_number: str = Field("SIM00001", min_length=1, max_length=15, pattern=r"^[ -~]+$")
    firmware: OceanOpticsFirmware = Field(default_factory=OceanOpticsFirmware)
    faults: OceanOpticsFaults = Field(default_factory=OceanOpticsFaults)

    @model_validator(mode="after")
    def _physical(self) -> OceanOpticsSimSettings:
        spec = MODELS[self.model]
        bias = self.effective_bias
        if bias >= spec.full_scale:
            raise ValueError(
                f"bias = {bias:g} counts leaves no range: the {self.model} saturates at "
                f"{spec.full_scale}; use 0 <= bias < {spec.full_scale}"
            )
        wl = wavelength_axis(self.coefficients, spec.pixels)
        if not (np.all(np.diff(wl) > 0) and wl[0] >= 100 and wl[-1] <= 2000):
            raise ValueError(
                f"wavelength_coefficients {list(self.coefficients)} give {wl[0]:.1f}-"
                f"{wl[-1]:.1f} nm over {spec.pixels} pixels; they must increase "
                "monotonically and stay within 100-2000 nm"
            )
        return self

    def for_model(self, model: str) -> OceanOpticsSimSettings:
        """A validated copy for ``model`` (the lab config names the model once, outside)."""
        return type(self).model_validate({**self.model_dump(), "model": model})

    @property
    def spec(self) -> DetectorModel:
        return MODELS[self.model]

    @property
    def coefficients(self) -> tuple[float, float, float, float]:
        return self.wavelength_coefficients or MODELS[self.model].coefficients

    @property
    def effective_gain(self) -> float:
        return self.gain if self.gain is not None else MODELS[self.model].gain

    @property
    def effective_bias(self) -> float:
        return self.bias if self.bias is not None else MODELS[self.model].bias


# --------------------------------------------------------------------------- optics


def wavelength_axis(coefficients: tuple[float, ...], pixels: int) -> np.ndarray:
    """λ(p) = c0 + c1 p + c2 p² + c3 p³ for p = 0..pixels-1 (nm)."""
    return np.polynomial.polynomial.polyval(np.arange(pixels, dtype=float), coefficients)


def quantum_efficiency(wavelength_nm: np.ndarray) -> np.ndarray:
    """The detector's electrons per photon: a silicon CCD with a UV coating."""
    return 0.05 + 0.55 * np.exp(-0.5 * ((wavelength_nm - 560.0) / 190.0) ** 2)


def lamp_spectrum(wavelength_nm: np.ndarray, temperature_k: float = 3000.0) -> np.ndarray:
    """Relative photon flux per nm of a deuterium-halogen lamp (peak of the sum ≈ 1)."""
    lam = np.asarray(wavelength_nm, dtype=float)
    x = 1.4387769e7 / (lam * temperature_k)  # hc / (λ k T)
    halogen = (lam / 1000.0) ** -4 / np.expm1(np.minimum(x, 700.0))
    peak_x = 1.4387769e7 / (1000.0 * temperature_k)  # normalise near the photon peak
    halogen /= 1.0 / np.expm1(peak_x)
    window = 1.0 / (1.0 + np.exp(-(lam - 195.0) / 4.0))
    deuterium = np.exp(-(lam - 200.0) / 60.0) * window
    lines = 0.04 * np.exp(-0.5 * ((lam - 656.1) / 0.5) ** 2)
    lines += 0.015 * np.exp(-0.5 * ((lam - 486.0) / 0.5) ** 2)
    return 0.5 * halogen + 0.8 * deuterium + lines


def _urbach_join(gap_ev: float, urbach_ev: float) -> float:
    b = 2 * gap_ev + urbach_ev
    return (math.sqrt(b * b + 8 * urbach_ev * gap_ev) - b) / 4


def _edge_shape(energy_ev: np.ndarray, gap_ev: float, urbach_ev: float) -> np.ndarray:
    join = gap_ev + _urbach_join(gap_ev, urbach_ev)
    at_join = math.sqrt(join - gap_ev) / join
    e = np.asarray(energy_ev, dtype=float)
    direct = np.sqrt(np.clip(e - gap_ev, 0.0, None)) / e
    tail = at_join * np.exp(np.minimum((e - join) / urbach_ev, 0.0))
    return np.where(e >= join, direct, tail)


def absorbance(energy_ev: np.ndarray, optics: OpticalProperties) -> np.ndarray:
    """Base-10 absorbance A(E) of a sample (direct gap plus Urbach tail; module docstring)."""
    shape = _edge_shape(energy_ev, optics.band_gap_ev, optics.urbach_ev)
    ref = _edge_shape(np.array([optics.band_gap_ev + 0.5]), optics.band_gap_ev, optics.urbach_ev)
    return optics.absorbance_scale * shape / ref[0]


def transmittance(wavelength_nm: np.ndarray, optics: OpticalProperties | None) -> np.ndarray:
    """T(λ) = 10^-A(E); 1 everywhere without a sample."""
    lam = np.asarray(wavelength_nm, dtype=float)
    if optics is None:
        return np.ones_like(lam)
    return 10.0 ** -np.minimum(absorbance(HC_EV_NM / lam, optics), 300.0)


def emission_per_ev(energy_ev: np.ndarray, peak_ev: float, fwhm_ev: float) -> np.ndarray:
    """A Gaussian in energy with unit area (1/eV)."""
    sigma = fwhm_ev / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    return np.exp(-0.5 * ((energy_ev - peak_ev) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))


def check_optics(optics: OpticalProperties) -> OpticalProperties:
    """Refuse optical properties no sample can have; the message names the field."""
    problems = []
    if not (math.isfinite(optics.band_gap_ev) and 0 < optics.band_gap_ev <= 20):
        problems.append(f"band_gap_ev = {optics.band_gap_ev!r} (allowed: 0 < Eg <= 20 eV)")
    if not (math.isfinite(optics.urbach_ev) and 0 < optics.urbach_ev <= 2):
        problems.append(f"urbach_ev = {optics.urbach_ev!r} (allowed: 0 < Eu <= 2 eV)")
    if not (math.isfinite(optics.absorbance_scale) and optics.absorbance_scale >= 0):
        problems.append(f"absorbance_scale = {optics.absorbance_scale!r} (allowed: >= 0)")
    if not (math.isfinite(optics.pl_yield) and 0 <= optics.pl_yield <= 1):
        problems.append(f"pl_yield = {optics.pl_yield!r} (allowed: 0-1)")
    if optics.pl_yield > 0:
        if not (math.isfinite(optics.pl_peak_ev) and optics.pl_peak_ev > 0):
            problems.append(f"pl_peak_ev = {optics.pl_peak_ev!r} (allowed: > 0 when pl_yield > 0)")
        if not (math.isfinite(optics.pl_fwhm_ev) and optics.pl_fwhm_ev > 0):
            problems.append(f"pl_fwhm_ev = {optics.pl_fwhm_ev!r} (allowed: > 0 when pl_yield > 0)")
    if problems:
        raise ValueError("impossible optical properties: " + "; ".join(problems))
    return optics


# --------------------------------------------------------------------------- physics


class SpectrometerPhysics:
    """Detector and light path: what one acquisition records (module docstring).

    Holds no wire state; :class:`OceanOpticsEmulator` asks it for spectra. Thread-safe
    for one caller at a time (the emulator's loop).
    """

    def __init__(self, settings: OceanOpticsSimSettings) -> None:
        self.settings = settings
        spec = settings.spec
        self.pixels = spec.pixels
        self.full_scale = spec.full_scale
        self.gain = settings.effective_gain
        self.bias = settings.effective_bias
        self.rng = np.random.default_rng(settings.seed)
        self.wavelengths = wavelength_axis(settings.coefficients, spec.pixels)
        c = settings.coefficients
        p = np.arange(spec.pixels, dtype=float)
        self.pixel_width = c[1] + 2 * c[2] * p + 3 * c[3] * p**2
        self.energies = HC_EV_NM / self.wavelengths
        self.qe = quantum_efficiency(self.wavelengths)
        nominal_e = _FILL * (self.full_scale - self.bias) / (self.gain * _NOMINAL_S)
        lamp = lamp_spectrum(self.wavelengths, settings.lamp_temperature_k) * self.pixel_width
        self.lamp_photons = lamp * nominal_e / np.max(self.qe * lamp)
        self._jacobian = HC_EV_NM / self.wavelengths**2 * self.pixel_width
        reference_pl = emission_per_ev(self.energies, 2.5, 0.15) * self._jacobian
        self.pl_photons_scale = nominal_e / np.max(self.qe * reference_pl)
        self.sample: OpticalProperties | None = None
        self.geometry: str = settings.geometry
        self._rate_key: tuple | None = None
        self._rate = np.zeros(self.pixels)

    def load(self, optics: OpticalProperties | None) -> None:
        self.sample = None if optics is None else check_optics(optics)

    def photon_rate(self, source_on: bool, boost: float = 1.0) -> np.ndarray:
        """Φ: photons per second reaching each pixel (``boost``: the saturation fault)."""
        s = self.settings
        if not source_on:
            return np.zeros(self.pixels)
        if self.geometry == "transmission":
            t = transmittance(self.wavelengths, self.sample)
            return boost * s.lamp_power * self.lamp_photons * t
        optics = self.sample
        if optics is None or optics.pl_yield == 0:
            return np.zeros(self.pixels)
        absorbed = 1.0 - transmittance(np.array([s.excitation_nm]), optics)[0]
        shape = emission_per_ev(self.energies, optics.pl_peak_ev, optics.pl_fwhm_ev)
        scale = s.excitation_power * self.pl_photons_scale * optics.pl_yield * absorbed
        return boost * scale * shape * self._jacobian

    def electron_rate(self, source_on: bool, boost: float = 1.0) -> np.ndarray:
        """Mean photo- plus dark electrons per second in each pixel (cached per state)."""
        s = self.settings
        key = (
            self.sample,
            self.geometry,
            source_on,
            boost,
            s.lamp_power,
            s.excitation_power,
            s.dark_current,
            s.excitation_nm,
        )
        if key != self._rate_key:
            self._rate = self.qe * self.photon_rate(source_on, boost) + s.dark_current
            self._rate_key = key
        return self._rate

    def acquire(
        self, rate: np.ndarray, integration_ms: int, scans: int = 1, boxcar: int = 0
    ) -> np.ndarray:
        """One ``S`` frame's pixel values: the sum of ``scans`` clipped scans at ``rate`` e⁻/s."""
        mean_e = rate * (integration_ms / 1000)
        g, bias, fs, read = self.gain, self.bias, self.full_scale, self.settings.read_noise
        if scans == 1:
            out = self._scans(mean_e, 1)
        else:
            mean_c = g * mean_e + bias
            spread = 6 * g * np.sqrt(mean_e + read**2) + 1
            safe = (mean_c + spread < fs) & (mean_c - spread > 0)
            full = mean_c - spread >= fs
            out = np.empty(self.pixels, dtype=np.int64)
            # Far from the rails a sum of Poisson and Gaussian scans is one Poisson and one
            # Gaussian draw; near them each scan is clipped on its own.
            n = int(safe.sum())
            noise = self.rng.normal(0.0, g * read * math.sqrt(scans), n)
            out[safe] = np.rint(g * self.rng.poisson(scans * mean_e[safe]) + scans * bias + noise)
            out[full] = scans * fs
            edge = ~safe & ~full
            if edge.any():
                out[edge] = self._scans(mean_e[edge], scans)
        return _boxcar(out, boxcar)

    def _scans(self, mean_e: np.ndarray, scans: int) -> np.ndarray:
        total = np.zeros(mean_e.shape, dtype=np.int64)
        g, read = self.gain, self.settings.read_noise
        for start in range(0, scans, 256):
            k = min(256, scans - start)
            electrons = self.rng.poisson(np.broadcast_to(mean_e, (k, *mean_e.shape)))
            counts = g * electrons + self.bias + self.rng.normal(0.0, g * read, electrons.shape)
            total += np.clip(np.rint(counts), 0, self.full_scale).astype(np.int64).sum(axis=0)
        return total


def _boxcar(values: np.ndarray, half_width: int) -> np.ndarray:
    """Each pixel replaced by the rounded mean of pixels p-b..p+b (fewer at the ends)."""
    if half_width == 0:
        return values
    n = values.size
    cum = np.concatenate(([0.0], np.cumsum(values, dtype=float)))
    idx = np.arange(n)
    lo, hi = np.maximum(idx - half_width, 0), np.minimum(idx + half_width + 1, n)
    return np.rint((cum[hi] - cum[lo]) / (hi - lo)).astype(np.int64)


# --------------------------------------------------------------------------- frames


def compress(values: np.ndarray) -> bytes:
    """Ocean Optics delta compression of WORD pixel data (the first pixel in full)."""
    v = np.asarray(values, dtype=np.int64)
    delta = np.diff(v, prepend=0)
    small = np.abs(delta) <= 127
    small[0] = False
    size = np.where(small, 1, 3)
    at = np.concatenate(([0], np.cumsum(size)[:-1]))
    out = np.empty(int(size.sum()), dtype=np.uint8)
    out[at[small]] = (delta[small] & 0xFF).astype(np.uint8)
    big = at[~small]
    out[big] = 0x80
    out[big + 1] = (v[~small] >> 8).astype(np.uint8)
    out[big + 2] = (v[~small] & 0xFF).astype(np.uint8)
    return out.tobytes()


def frame_header(scans: int, integration_ms: int, baseline: int, *, dword: bool) -> tuple[int, ...]:
    """The seven header words: start, data size, scans, time, baseline MSW/LSW, pixel mode."""
    return (FRAME_START, int(dword), scans, integration_ms, baseline >> 16, baseline & 0xFFFF, 0)


def spectrum_frame(values: np.ndarray, header: tuple[int, ...], *, compressed: bool) -> bytes:
    """The binary frame that follows STX: header, pixel data, end word."""
    if header[1]:
        data = np.asarray(values).astype(">u4").tobytes()
    elif compressed:
        data = compress(values)
    else:
        data = np.asarray(values).astype(">u2").tobytes()
    return struct.pack(">7H", *header) + data + struct.pack(">H", FRAME_END)


# --------------------------------------------------------------------------- emulator


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


class _Closed(Exception):
    """The client side of the link is gone."""


class _Abandoned(Exception):
    """A command's data stopped arriving."""


class _Link:
    """One client connection: buffered byte reads, replies, and a way to drop it."""

    def __init__(
        self,
        recv: Callable[[], Awaitable[bytes]],
        send: Callable[[bytes], Awaitable[None]],
        drop: Callable[[], None] | None,
    ) -> None:
        self._recv, self.send, self.drop = recv, send, drop
        self._buf = bytearray()

    async def byte(self, timeout: float | None = None) -> int:
        while not self._buf:
            try:
                chunk = await asyncio.wait_for(self._recv(), timeout)
            except TimeoutError:
                raise _Abandoned from None
            if not chunk:
                raise _Closed
            self._buf += chunk
        value = self._buf[0]
        del self._buf[0]
        return value


class OceanOpticsEmulator:
    """An Ocean Optics serial spectrometer on a pty or TCP port, with a sample in its beam.

    Parameters
    ----------
    url
        ``pty://`` or ``socket://127.0.0.1:PORT`` (0 = any free port).
    settings
        :class:`OceanOpticsSimSettings` (or its dict, e.g. a lab YAML ``sim:`` block).
    clock
        The lab clock; an acquisition takes integration time × scans on it.
    name
        Names the emulator in messages.

    The simulated world drives the light path with :meth:`load` (the sample in the beam,
    ``None`` for the empty beam) and :attr:`geometry`; the J line (from the client) or
    :attr:`source_on` switches the lamp or excitation. Faults switch on :attr:`faults`,
    firmware variants on :attr:`firmware`.
    Tests read :attr:`values` (the A B G I J K settings in force), :attr:`log` (commands
    received) and :meth:`expected_counts` (the noise-free spectrum).
    """

    def __init__(
        self,
        url: str = "pty://",
        settings: OceanOpticsSimSettings | dict | None = None,
        *,
        clock: Clock | None = None,
        name: str = "spectrometer",
    ) -> None:
        if isinstance(settings, OceanOpticsSimSettings):
            checked = settings
        else:
            checked = OceanOpticsSimSettings.model_validate(settings or {})
        scheme = urlsplit(url).scheme
        if scheme not in ("pty", "socket"):
            raise ValueError(
                f"{name}: connection {url!r} is not one the emulator serves; "
                "use pty:// or socket://127.0.0.1:PORT"
            )
        self.url, self.name, self.settings = url, name, checked
        self.clock = clock or WallClock()
        self.spec = checked.spec
        self.faults = checked.faults.model_copy()
        self.firmware = checked.firmware.model_copy()
        self.physics = SpectrometerPhysics(checked)
        self.values = dict(DEFAULTS)
        self.ascii_mode = False
        self.log: deque[bytes] = deque(maxlen=1000)
        """Recent commands as received (letter and data bytes), newest last."""
        self._fault_rng = np.random.default_rng(checked.seed + 1)
        self._tasks: set[asyncio.Task] = set()
        self._links: list[_Link] = []
        self._pty: PtyLink | None = None
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ----------------------------------------------------------- the simulated world

    def load(self, optics: OpticalProperties | None) -> None:
        """Put a sample with these optics in the beam (``None``: empty beam, the reference)."""
        self.physics.load(optics)

    @property
    def sample(self) -> OpticalProperties | None:
        return self.physics.sample

    @property
    def geometry(self) -> str:
        """``"transmission"`` (lamp through the sample) or ``"photoluminescence"``."""
        return self.physics.geometry

    @geometry.setter
    def geometry(self, value: str) -> None:
        if value not in ("transmission", "photoluminescence"):
            raise ValueError(
                f"{self.name}: geometry {value!r} is not one of 'transmission', 'photoluminescence'"
            )
        self.physics.geometry = value

    @property
    def source_on(self) -> bool:
        """The lamp-enable (J) line: the lamp or excitation source is on."""
        return bool(self.values["J"])

    @source_on.setter
    def source_on(self, on: bool) -> None:
        self.values["J"] = int(bool(on))

    @property
    def wavelengths(self) -> np.ndarray:
        """The wavelength of each pixel (nm), from the stored calibration."""
        return self.physics.wavelengths

    def electron_rate(self) -> np.ndarray:
        """Mean electrons per second in each pixel in the current state of the light path."""
        return self.physics.electron_rate(self.source_on, 100.0 if self.faults.saturation else 1)

    def expected_counts(self, integration_ms: float | None = None) -> np.ndarray:
        """Noise-free mean counts of one scan, before clipping (default: the current ``I``)."""
        t = (self.values["I"] if integration_ms is None else integration_ms) / 1000
        return self.physics.gain * self.electron_rate() * t + self.physics.bias

    def synthesize(self) -> np.ndarray:
        """Pixel values of one ``S`` frame with the current settings (no wire, no waiting):
        the sum of the scans, or their rounded mean where the firmware averages."""
        v = self.values
        values = self.physics.acquire(self.electron_rate(), v["I"], v["A"], v["B"])
        if self.firmware.scan_mode == "average" and v["A"] > 1:
            return np.rint(values / v["A"]).astype(np.int64)
        return values

    def frame(self) -> bytes:
        """The reply to ``S`` (STX and the frame) in the current data mode and settings."""
        v = self.values
        dword = v["A"] > 1 and self.firmware.scan_mode == "sum"
        header = frame_header(v["A"], v["I"], round(self.physics.bias), dword=dword)
        values = self.synthesize()
        if self.ascii_mode:
            words = [*header, *values.tolist(), FRAME_END]
            return bytes([STX]) + "".join(f"{w}\r\n" for w in words).encode("ascii")
        return bytes([STX]) + spectrum_frame(values, header, compressed=bool(v["G"]))

    # ----------------------------------------------------------- serving

    async def start(self) -> str:
        self._loop = asyncio.get_running_loop()
        parts = urlsplit(self.url)
        if parts.scheme == "pty":
            self._pty = PtyLink()
            self._pty.attach(self._loop)
            link = _Link(self._pty.read, self._pty_send, None)
            self._spawn(self._session(link))
            return self._pty.path
        host, port = parts.hostname or "127.0.0.1", parts.port or 0
        try:
            self._server = await asyncio.start_server(self._on_client, host, port)
        except OSError as exc:
            raise OSError(
                exc.errno, f"{self.name}: cannot listen on {host}:{port} ({exc.strerror})"
            ) from None
        bound = self._server.sockets[0].getsockname()
        return f"socket://{bound[0]}:{bound[1]}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in self._links:
            if link.drop is not None:
                link.drop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._pty is not None:
            self._pty.close(self._loop)
            self._pty = None

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def send(data: bytes) -> None:
            writer.write(data)
            with contextlib.suppress(ConnectionError):
                await writer.drain()

        link = _Link(lambda: reader.read(4096), send, writer.transport.abort)
        self._links.append(link)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._session(link)
        finally:
            self._links.remove(link)
            writer.transport.abort()
            if task is not None:
                self._tasks.discard(task)

    async def _pty_send(self, data: bytes) -> None:
        assert self._pty is not None and self._loop is not None
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._pty.master, view) :]
            except BlockingIOError:
                ready = self._loop.create_future()
                fd = self._pty.master
                self._loop.add_writer(fd, _wake, ready)
                try:
                    await asyncio.wait_for(ready, WRITE_STALL_S)
                except TimeoutError:
                    return  # nobody reads: the rest is lost, as on a real line
                finally:
                    self._loop.remove_writer(fd)
            except OSError:
                return

    async def _session(self, link: _Link) -> None:
        with contextlib.suppress(_Closed, ConnectionError):
            while True:
                letter = await link.byte()
                try:
                    await self._command(link, letter)
                except _Abandoned:
                    continue

    # ----------------------------------------------------------- commands

    async def _command(self, link: _Link, byte: int) -> None:
        letter = chr(byte)
        if self.ascii_mode and letter in "\r\n":
            return
        received = bytearray([byte])
        await self._echo(link, bytes([byte]))
        if letter in "ABGIJK":
            value = await self._data(link, received)
            self.log.append(bytes(received))
            ok = value is not None and not self.faults.nak and self._set(letter, value)
            await self._reply(link, bytes([ACK if ok else NAK]))
        elif letter == "Q":
            self.log.append(bytes(received))
            if not self.faults.nak:
                self.values.update({k: v for k, v in DEFAULTS.items() if k != "K"})
            await self._reply(link, bytes([NAK if self.faults.nak else ACK]))
        elif letter == "S":
            self.log.append(bytes(received))
            await self._acquire(link)
        elif letter == "v":
            self.log.append(bytes(received))
            await self._answer(link, self._encode_word(self.spec.firmware))
        elif letter == "?":
            await self._query(link, received)
        elif letter in "ab":
            second = await link.byte(INTERBYTE_S)
            received.append(second)
            await self._echo(link, bytes([second]))
            self.log.append(bytes(received))
            ok = second == ord(letter.upper()) and not self.faults.nak
            reply = bytes([ACK if ok else NAK])
            if ok and letter == "b":
                self.ascii_mode = False
            await self._reply(link, reply)
            if ok and letter == "a":
                self.ascii_mode = True
        else:
            self.log.append(bytes(received))
            await self._reply(link, bytes([NAK]))

    async def _query(self, link: _Link, received: bytearray) -> None:
        what = await link.byte(INTERBYTE_S)
        received.append(what)
        await self._echo(link, bytes([what]))
        key = chr(what)
        if key == "x" and self.firmware.nak_slot_queries:
            self.log.append(bytes(received))
            await self._answer(link, None)  # the slot WORD is left to be read as commands
            return
        if key == "x":
            slot = await self._data(link, received)
            self.log.append(bytes(received))
            text = self.slot_text(slot) if slot is not None else None
            if text is None:
                await self._answer(link, None)
            elif self.ascii_mode:
                await self._answer(link, text.encode("ascii") + b"\r\n")
            else:
                await self._answer(link, text.encode("ascii").ljust(16, b"\0"))
            return
        self.log.append(bytes(received))
        value = self.values.get(key)
        await self._answer(link, None if value is None else self._encode_word(value))

    def slot_text(self, slot: int) -> str | None:
        """Configuration slot ``slot`` as the instrument stores it (``None``: no such slot)."""
        c = self.settings.coefficients
        slots = {
            0: self.settings.serial_number,
            1: f"{c[0]:.7E}",
            2: f"{c[1]:.7E}",
            3: f"{c[2]:.7E}",
            4: f"{c[3]:.7E}",
            5: "0",
            6: "1.0000000E+00",
            **{i: "0.0000000E+00" for i in range(7, 14)},
            14: "0",
            15: "05 000 025",
            16: "ILX511" if self.spec.pixels == 2048 else "TCD1304AP",
            17: "",
            18: str(BAUD_CODES[DEFAULTS["K"]]),
            19: "",
        }
        return slots.get(slot)

    def _set(self, letter: str, value: int) -> bool:
        if letter == "A" and not SCANS_RANGE[0] <= value <= SCANS_RANGE[1]:
            return False
        if letter == "B" and not BOXCAR_RANGE[0] <= value <= BOXCAR_RANGE[1]:
            return False
        if letter == "I" and not (
            self.spec.min_integration_ms <= value <= self.spec.max_integration_ms
        ):
            return False
        if letter == "K" and value not in BAUD_CODES:
            return False
        if letter == "I" and self.faults.ignore_integration_time:
            return True  # acknowledged, not applied
        self.values[letter] = int(bool(value)) if letter in "GJ" else value
        return True

    async def _acquire(self, link: _Link) -> None:
        if self.faults.nak:
            await self._reply(link, bytes([ETX]))
            return
        await self.clock.asleep(self.values["I"] / 1000 * self.values["A"])
        await self._reply(link, self.frame())

    # ----------------------------------------------------------- bytes in and out

    async def _data(self, link: _Link, received: bytearray) -> int | None:
        """A command's data word; ``None`` when it is not a number in 0-65535."""
        if not self.ascii_mode:
            hi, lo = await link.byte(INTERBYTE_S), await link.byte(INTERBYTE_S)
            received += bytes([hi, lo])
            return hi << 8 | lo
        digits = bytearray()
        while True:
            b = await link.byte(INTERBYTE_S)
            received.append(b)
            await self._echo(link, bytes([b]))
            if b in (0x0D, 0x0A):
                break
            digits.append(b)
        text = digits.decode("ascii", "replace")
        if not text.isdigit() or int(text) > 0xFFFF:
            return None
        return int(text)

    def _encode_word(self, value: int) -> bytes:
        return f"{value}\r\n".encode() if self.ascii_mode else struct.pack(">H", value)

    async def _answer(self, link: _Link, payload: bytes | None) -> None:
        """ACK and ``payload``, or NAK when there is none (or every command is refused)."""
        if payload is None or self.faults.nak:
            await self._reply(link, bytes([NAK]))
        else:
            await self._reply(link, bytes([ACK]) + payload)

    async def _echo(self, link: _Link, data: bytes) -> None:
        if self.ascii_mode and not (self.faults.no_reply or self.faults.drop_connection):
            await self._transmit(link, data)

    async def _reply(self, link: _Link, payload: bytes) -> None:
        f = self.faults
        if f.drop_connection and link.drop is not None:
            link.drop()
            raise _Closed
        if f.no_reply or f.drop_connection:  # a serial line cannot be dropped: silence
            return
        if f.lose_replies:
            f.lose_replies -= 1
            return
        if f.reply_delay_s:
            await asyncio.sleep(f.reply_delay_s)
        if f.garbage:
            payload = self._garble(len(payload))
        await self._transmit(link, payload)

    async def _transmit(self, link: _Link, data: bytes) -> None:
        """Send ``data``; at ``firmware.pace_baud``, each byte after its 10 bits of line time."""
        baud = self.firmware.pace_baud
        if baud is None:
            await link.send(data)
            return
        loop = asyncio.get_running_loop()
        due, step = loop.time(), max(1, baud // 1000)  # writes of about 10 ms of line time
        for at in range(0, len(data), step):
            chunk = data[at : at + step]
            due += 10 * len(chunk) / baud
            await asyncio.sleep(due - loop.time())
            await link.send(chunk)

    def _garble(self, n: int) -> bytes:
        junk = self._fault_rng.integers(0, 256, n, dtype=np.uint8)
        while junk[0] in (ACK, NAK, STX, ETX):
            junk[0] = self._fault_rng.integers(0, 256)
        return junk.tobytes()
