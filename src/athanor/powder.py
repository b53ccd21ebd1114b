"""Powder-diffraction peak shapes, shared by the pattern simulator and the analysis."""

from __future__ import annotations

import numpy as np


def pseudo_voigt_parameters(
    h_gauss: np.ndarray, h_lorentz: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Total FWHM and Lorentzian fraction η of a Voigt (Thompson, Cox & Hastings 1987)."""
    g, lo = h_gauss, h_lorentz
    fwhm = (
        g**5
        + 2.69269 * g**4 * lo
        + 2.42843 * g**3 * lo**2
        + 4.47163 * g**2 * lo**3
        + 0.07842 * g * lo**4
        + lo**5
    ) ** 0.2
    r = lo / fwhm
    eta = np.clip(1.36603 * r - 0.47719 * r**2 + 0.11116 * r**3, 0.0, 1.0)
    return fwhm, eta
