"""Powder patterns made independently of the analysis, to score it without shared mistakes.

The simulator and the analysis share peak shapes, widths, the Kα2 ratio and the
background model; scored on the simulator's patterns, the analysis is marked on its own
assumptions. This generator is written separately and plainly:

- Structure factors summed here over the symmetry-expanded cell read from the CIF (not
  Dans_Diffraction's), with ITC Cromer-Mann form factors, anomalous dispersion f′, f″
  for Cu Kα (which the references leave out) and Debye-Waller factors from U_iso.
- Lines are exact Voigt profiles (``scipy.special.voigt_profile``) evaluated point by
  point in 2θ, tails over the whole scan: Gaussian FWHM² = U tan²θ + V tanθ + W with
  this instrument's own U, V, W; Lorentzian FWHM = X tanθ (microstrain) + Kλ/(L cosθ) (size).
- Kα2/Kα1 drawn in 0.46-0.52; zero offset; sample displacement Δ2θ = −2 s cosθ / R with
  goniometer radius R = 145 mm.
- Background: a flat level with a slope, air scatter falling as 1/sin²θ, and, when asked,
  an amorphous hump (two broad Gaussians in q, as a glass gives).
- Poisson counts.

Intensities per unit weight fraction are ``m |F|² LP / (ρ V²)`` (Hill & Howard); the
absorption of the mixture is a factor common to all phases and is left out, so the truth
to compare with is the fraction of the crystalline part.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.special import voigt_profile

from athanor.phases import structure_path

CU_KA1, CU_KA2 = 1.54056, 1.54439  # Å
RADIUS_MM = 145.0  # goniometer radius
_FWHM_TO_SIGMA = 1 / (2 * np.sqrt(2 * np.log(2)))
_MAX_TWO_THETA = 110.0

# ITC Vol. C Table 6.1.1.4: a1 b1 a2 b2 a3 b3 a4 b4 c
_CROMER_MANN = {
    "Ba": (20.3361, 3.216, 19.297, 0.2756, 10.888, 20.2073, 2.6959, 167.202, 2.7731),
    "Ti": (9.7595, 7.8508, 7.3558, 0.5, 1.6991, 35.6338, 1.9021, 116.105, 1.2807),
    "O": (3.0485, 13.2771, 2.2868, 5.7011, 1.5463, 0.3239, 0.867, 32.9089, 0.2508),
    "C": (2.31, 20.8439, 1.02, 10.2075, 1.5886, 0.5687, 0.865, 51.6512, 0.2156),
}
# Cu Kα anomalous dispersion f′, f″ (ITC Vol. C Table 4.2.6.8)
_DISPERSION = {
    "Ba": (-1.334, 8.460),
    "Ti": (0.219, 1.807),
    "O": (0.049, 0.032),
    "C": (0.018, 0.009),
}
_MASS = {"Ba": 137.327, "Ti": 47.867, "O": 15.999, "C": 12.011}  # g/mol


@dataclass(frozen=True)
class Lines:
    """One phase's powder lines: d (Å, lattice scale 1) and ``m |F|² / (ρ V²)``."""

    d: np.ndarray
    strength: np.ndarray


def _cif(text: str) -> tuple[dict[str, str], list[str], list[dict[str, str]]]:
    """Items, symmetry operations and atom sites of a simple CIF."""
    items, ops, atoms = {}, [], []
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    i = 0
    while i < len(lines):
        if lines[i] == "loop_":
            keys, i = [], i + 1
            while i < len(lines) and lines[i].startswith("_"):
                keys.append(lines[i])
                i += 1
            while i < len(lines) and not lines[i].startswith(("_", "loop_", "data_")):
                values = shlex.split(lines[i])
                if keys == ["_symmetry_equiv_pos_as_xyz"]:
                    ops.append(values[0])
                elif "_atom_site_fract_x" in keys:
                    atoms.append(dict(zip(keys, values, strict=True)))
                i += 1
        else:
            key, *value = lines[i].split(None, 1)
            items[key] = value[0].strip("'") if value else ""
            i += 1
    return items, ops, atoms


def _apply(op: str, xyz: np.ndarray) -> np.ndarray:
    """One symmetry operation such as ``1/2-x,1/2+y,z`` applied to a fractional position."""
    out = []
    for part in op.replace(" ", "").split(","):
        value = 0.0
        for sign, term in re.findall(r"([+-]?)([^+-]+)", part):
            s = -1.0 if sign == "-" else 1.0
            if term in "xyz":
                value += s * xyz["xyz".index(term)]
            else:
                num, _, den = term.partition("/")
                value += s * float(num) / float(den or 1)
        out.append(value % 1.0)
    return np.array(out)


@cache
def phase_lines(phase: str) -> Lines:
    """Lines of ``phase`` from its CIF, to 2θ = 110° (Cu Kα1) at lattice scale 0.97."""
    items, ops, atoms = _cif(structure_path(phase).read_text())
    a, b, c = (float(items[f"_cell_length_{k}"]) for k in "abc")
    al, be, ga = (np.radians(float(items[f"_cell_angle_{k}"])) for k in ("alpha", "beta", "gamma"))
    metric = np.array(
        [
            [a * a, a * b * np.cos(ga), a * c * np.cos(be)],
            [a * b * np.cos(ga), b * b, b * c * np.cos(al)],
            [a * c * np.cos(be), b * c * np.cos(al), c * c],
        ]
    )
    volume = float(np.sqrt(np.linalg.det(metric)))
    sites, elements, occupancy, u_iso = [], [], [], []
    for atom in atoms:
        xyz = np.array([float(atom[f"_atom_site_fract_{k}"]) for k in "xyz"])
        images: list[np.ndarray] = []
        for op in ops:
            p = _apply(op, xyz)
            if not any(np.allclose((p - q + 0.5) % 1 - 0.5, 0, atol=1e-4) for q in images):
                images.append(p)
        sites += images
        elements += [atom["_atom_site_type_symbol"]] * len(images)
        occupancy += [float(atom.get("_atom_site_occupancy", 1))] * len(images)
        u_iso += [float(atom.get("_atom_site_U_iso_or_equiv", 0))] * len(images)
    r, occ, u = np.array(sites), np.array(occupancy), np.array(u_iso)
    density = sum(o * _MASS[e] for o, e in zip(occ, elements, strict=True)) * 1.66054 / volume
    d_min = CU_KA1 / (2 * np.sin(np.radians(_MAX_TWO_THETA / 2))) * 0.97
    limit = [int(np.ceil(x / d_min)) for x in (a, b, c)]
    grids = np.meshgrid(*[np.arange(-n, n + 1) for n in limit], indexing="ij")
    hkl = np.stack([g.ravel() for g in grids], axis=1)
    inverse_metric = np.linalg.inv(metric)
    inv_d2 = np.einsum("ij,jk,ik->i", hkl, inverse_metric, hkl)
    keep = (inv_d2 > 0) & (inv_d2 <= 1 / d_min**2)
    hkl, inv_d2 = hkl[keep], inv_d2[keep]
    s2 = inv_d2 / 4  # (sin θ / λ)²
    phase_factor = np.exp(2j * np.pi * hkl @ r.T)
    form = np.empty((hkl.shape[0], len(elements)), dtype=complex)
    for j, element in enumerate(elements):
        cm = _CROMER_MANN[element]
        f0 = sum(cm[2 * k] * np.exp(-cm[2 * k + 1] * s2) for k in range(4)) + cm[8]
        f1, f2 = _DISPERSION[element]
        form[:, j] = (f0 + f1 + 1j * f2) * occ[j] * np.exp(-8 * np.pi**2 * u[j] * s2)
    f_squared = np.abs(np.sum(form * phase_factor, axis=1)) ** 2
    d, inverse = np.unique(np.round(1 / np.sqrt(inv_d2), 5), return_inverse=True)
    strength = np.bincount(inverse, weights=f_squared) / (density * volume**2)
    keep = strength > 1e-5 * strength.max()
    return Lines(d[keep], strength[keep])


def lorentz_polarisation(two_theta: np.ndarray) -> np.ndarray:
    t = np.radians(two_theta)
    return (1 + np.cos(t) ** 2) / (np.sin(t / 2) ** 2 * np.cos(t / 2))


@dataclass(frozen=True)
class Conditions:
    """How one pattern is measured (angles in degrees, displacement in mm)."""

    u: float = 0.006
    v: float = -0.002
    w: float = 0.003
    strain_x: float = 0.01  # Lorentzian FWHM X tanθ
    scherrer_k: float = 0.9
    ka2_ratio: float = 0.49
    zero_deg: float = 0.0
    displacement_mm: float = 0.0
    line_area: float = 1200.0  # counts·degree of pure BaTiO3's strongest Kα1 line
    flat: float = 0.01  # flat background, of that line's height at 100 nm
    air: float = 0.05  # air scatter at 2θ = 10°, same unit
    hump_height: float = 0.0  # amorphous hump maximum, same unit
    hump_centre_deg: float = 26.0
    hump_fwhm_deg: float = 9.0
    start: float = 10.0
    end: float = 100.0
    step: float = 0.011


@cache
def _unit() -> float:
    lines = phase_lines("BaTiO3")
    tth = 2 * np.degrees(np.arcsin(CU_KA1 / (2 * lines.d)))
    return float(np.max(lines.strength * lorentz_polarisation(tth)))


def expected(
    fractions: dict[str, float],
    sizes_nm: dict[str, float],
    lattice: dict[str, float],
    cond: Conditions,
) -> np.ndarray:
    """Mean counts on the grid of ``cond`` for crystalline weight ``fractions``."""
    tth = grid(cond)
    theta = np.radians(tth) / 2
    height = cond.line_area / 0.08  # the unit of the background terms: a 0.08°-wide line
    hump = (
        cond.hump_height
        * height
        * np.exp(-0.5 * ((tth - cond.hump_centre_deg) * 2.3548 / cond.hump_fwhm_deg) ** 2)
    )
    second = 1.85 * cond.hump_centre_deg  # the glass's second maximum, weaker and broader
    hump += (
        0.35
        * cond.hump_height
        * height
        * np.exp(-0.5 * ((tth - second) * 2.3548 / (1.6 * cond.hump_fwhm_deg)) ** 2)
    )
    slope = 1 - 0.3 * (tth - cond.start) / (cond.end - cond.start)
    air = cond.air * height * np.sin(np.radians(5.0)) ** 2 / np.sin(theta) ** 2
    out = cond.flat * height * slope + air + hump
    for phase, w in fractions.items():
        if w <= 0:
            continue
        lines = phase_lines(phase)
        d = lines.d * lattice.get(phase, 1.0)
        area0 = w * lines.strength / lattice.get(phase, 1.0) ** 3 / _unit() * cond.line_area
        for wavelength, ratio in ((CU_KA1, 1.0), (CU_KA2, cond.ka2_ratio)):
            sin = wavelength / (2 * d)
            ok = sin < np.sin(np.radians(_MAX_TWO_THETA / 2))
            th = np.arcsin(sin[ok])
            pos = 2 * np.degrees(th)
            pos = (
                pos + cond.zero_deg - np.degrees(2 * cond.displacement_mm * np.cos(th) / RADIUS_MM)
            )
            area = area0[ok] * lorentz_polarisation(2 * np.degrees(th)) * ratio
            tan = np.tan(th)
            gauss = np.sqrt(np.maximum(cond.u * tan**2 + cond.v * tan + cond.w, 1e-6))
            size = np.degrees(cond.scherrer_k * wavelength / (10 * sizes_nm[phase] * np.cos(th)))
            lorentz = cond.strain_x * tan + size
            strong = area > 1e-4 * area.max()
            pos, area, gauss, lorentz = pos[strong], area[strong], gauss[strong], lorentz[strong]
            # the Voigt's asymptote γ / (π x²) everywhere, the Voigt itself within 6 FWHM
            gamma = lorentz / 2
            for chunk in np.array_split(np.arange(pos.size), max(1, pos.size // 64)):
                x2 = np.maximum((tth[None, :] - pos[chunk, None]) ** 2, 1e-12)
                out += (area[chunk] * gamma[chunk] / np.pi) @ (1 / x2)
            half = 6 * (gauss + lorentz)
            first = np.searchsorted(tth, pos - half)
            length = np.searchsorted(tth, pos + half) - first
            line = np.repeat(np.arange(pos.size), length)
            start = np.repeat(np.cumsum(length) - length, length)
            index = first[line] + np.arange(line.size) - start
            x = tth[index] - pos[line]
            exact = voigt_profile(x, gauss[line] * _FWHM_TO_SIGMA, gamma[line])
            near = exact - gamma[line] / (np.pi * np.maximum(x * x, 1e-12))
            out += np.bincount(index, area[line] * near, minlength=tth.size)
    return out


def grid(cond: Conditions) -> np.ndarray:
    return np.arange(cond.start, cond.end + cond.step / 2, cond.step)
