"""Analysis: phases from diffraction patterns, band gap and emission from optical spectra.

Every method returns an :class:`AnalysisResult` (named outcomes with value, uncertainty
and unit, the method's name and parameters). :func:`analyse` runs a registered method on
a :class:`Measurement`; :func:`reanalyse` runs one over stored measurements, so a
finished campaign can be analysed again with another method or other parameters.

Methods (:data:`METHODS`):

- ``xrd.wpf``: whole-pattern fit of reference profiles (phase fractions, lattice scales,
  crystallite sizes, Rwp, unexplained intensity) — :func:`analyse_pattern`.
- ``xrd.peak_ratio``: strongest-line ratio (naive baseline).
- ``spectra.tauc_auto``: band gap from a Tauc fit over a window chosen automatically.
- ``spectra.tauc_fixed``: Tauc fit over a fixed range (baseline).
- ``spectra.pl_gaussian``: photoluminescence peak (Gaussian in energy).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

from athanor.analysis.outcomes import AnalysisError, AnalysisResult, Quantity
from athanor.analysis.phases import (
    InstrumentProfile,
    XRDParams,
    analyse_pattern,
    analyse_pattern_file,
    analyse_pattern_peak_ratio,
)
from athanor.analysis.references import ReferenceSet, load_references
from athanor.analysis.spectra import (
    PLParams,
    Spectrum,
    TaucParams,
    analyse_photoluminescence,
    analyse_transmission,
)

Kind = Literal["xrd", "transmission", "pl"]


@dataclass(frozen=True)
class Measurement:
    """Raw data of one measurement, as stored (e.g. read back from Bluesky documents).

    ``data`` by ``kind``:

    - ``"xrd"``: ``two_theta``, ``counts`` and optionally ``counting_time`` (s per
      step); or ``path`` to an ``.xrdml``/``.xy``/``.xye`` file.
    - ``"transmission"``: ``sample``, ``dark``, ``reference`` (:class:`Spectrum`).
    - ``"pl"``: ``emission``, ``dark`` (:class:`Spectrum`), optionally ``response``.

    ``source`` names it in messages (a run uid, a file).
    """

    kind: Kind
    data: Mapping[str, Any]
    source: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)


def _xrd(method: str, measurement: Measurement, params: Any) -> AnalysisResult:
    data = measurement.data
    if "path" in data:
        return analyse_pattern_file(Path(data["path"]), params, method=method)
    _require(measurement, "two_theta", "counts")
    fn = analyse_pattern if method == "xrd.wpf" else analyse_pattern_peak_ratio
    return fn(
        data["two_theta"],
        data["counts"],
        params,
        counting_time=data.get("counting_time"),
        source=measurement.source,
    )


def _transmission(method: str, measurement: Measurement, params: Any) -> AnalysisResult:
    _require(measurement, "sample", "dark", "reference")
    d = measurement.data
    return analyse_transmission(d["sample"], d["dark"], d["reference"], params, method=method)


def _pl(method: str, measurement: Measurement, params: Any) -> AnalysisResult:
    _require(measurement, "emission", "dark")
    d = measurement.data
    return analyse_photoluminescence(d["emission"], d["dark"], params, response=d.get("response"))


#: method name → (the kind of measurement it analyses, the function)
METHODS: dict[str, tuple[Kind, Callable[[Measurement, Any], AnalysisResult]]] = {
    "xrd.wpf": ("xrd", partial(_xrd, "xrd.wpf")),
    "xrd.peak_ratio": ("xrd", partial(_xrd, "xrd.peak_ratio")),
    "spectra.tauc_auto": ("transmission", partial(_transmission, "spectra.tauc_auto")),
    "spectra.tauc_fixed": ("transmission", partial(_transmission, "spectra.tauc_fixed")),
    "spectra.pl_gaussian": ("pl", partial(_pl, "spectra.pl_gaussian")),
}
DEFAULT_METHODS: dict[Kind, str] = {
    "xrd": "xrd.wpf",
    "transmission": "spectra.tauc_auto",
    "pl": "spectra.pl_gaussian",
}


def analyse(
    measurement: Measurement, method: str | None = None, params: Mapping[str, Any] | None = None
) -> AnalysisResult:
    """Analyse ``measurement`` with ``method`` (default: the kind's default method).

    ``params`` are the method's parameters (a stored result's ``params`` re-run it).
    Raises :class:`AnalysisError` for bad input, naming the data and the problem.
    """
    name = method or DEFAULT_METHODS.get(measurement.kind)
    if name not in METHODS:
        raise AnalysisError(f"unknown analysis method {name!r}; methods: {', '.join(METHODS)}")
    kind, fn = METHODS[name]
    if kind != measurement.kind:
        raise AnalysisError(
            f"{measurement.source or 'measurement'}: method {name} analyses {kind} "
            f"measurements, not {measurement.kind}"
        )
    return fn(measurement, dict(params) if params else None)


def reanalyse(
    measurements: Iterable[Measurement],
    method: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> list[AnalysisResult]:
    """Analyse stored measurements again (``athanor analyse <campaign>``).

    Measurements of another kind than ``method`` analyses are skipped; one that cannot
    be analysed gives a rejected result with the reason instead of stopping the rest.
    """
    wanted = METHODS[method][0] if method in METHODS else None
    if method is not None and wanted is None:
        raise AnalysisError(f"unknown analysis method {method!r}; methods: {', '.join(METHODS)}")
    results = []
    for m in measurements:
        if wanted is not None and m.kind != wanted:
            continue
        name = method or DEFAULT_METHODS[m.kind]
        try:
            results.append(analyse(m, name, params))
        except AnalysisError as exc:
            results.append(AnalysisResult.rejection(name, dict(params or {}), str(exc), m.source))
    return results


def _require(measurement: Measurement, *keys: str) -> None:
    missing = [k for k in keys if k not in measurement.data]
    if missing:
        raise AnalysisError(
            f"{measurement.source or 'measurement'}: {measurement.kind} data lacks "
            f"{', '.join(missing)} (has {', '.join(measurement.data) or 'nothing'})"
        )


__all__ = [
    "DEFAULT_METHODS",
    "METHODS",
    "AnalysisError",
    "AnalysisResult",
    "InstrumentProfile",
    "Measurement",
    "PLParams",
    "Quantity",
    "ReferenceSet",
    "Spectrum",
    "TaucParams",
    "XRDParams",
    "analyse",
    "analyse_pattern",
    "analyse_pattern_file",
    "analyse_pattern_peak_ratio",
    "analyse_photoluminescence",
    "analyse_transmission",
    "load_references",
    "reanalyse",
]
