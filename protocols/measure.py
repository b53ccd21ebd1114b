"""Measurements of one sample: a powder pattern, and dark, reference and sample spectra."""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import Msg

from athanor.devices.diffractometer import Diffractometer
from athanor.devices.spectrometer import Saturated, Spectrometer
from athanor.protocols.contract import Stage, stage_md

PlanFactory = Callable[[], Generator[Msg, Any, Any]]
#: Bounded auto-exposure: the integration time shrinks by this factor while the
#: brightest spectrum saturates, at most this many times.
EXPOSURE_STEP = 0.25
EXPOSURE_TRIES = 6


def measure_xrd(
    diffractometer: Diffractometer,
    sample_id: str,
    *,
    program: str | None = None,
    md: dict[str, Any] | None = None,
) -> Generator[Msg, Any, Any]:
    """Measure the powder pattern of the sample in the diffractometer.

    Parameters
    ----------
    diffractometer : Diffractometer
        The instrument (the sample must be at its slot).
    sample_id : str
        The sample's id; also the pattern's file name on the instrument.
    program : str, optional
        Scan program (e.g. ``"10-100_8-minutes"``); defaults to the device's.
    md : dict, optional
        Metadata for the start document.

    Yields
    ------
    msg : Msg
        Messages to the RunEngine.
    """
    if not sample_id:
        raise ValueError("measure_xrd: sample_id must not be empty")
    _md = {
        "plan_name": "measure_xrd",
        **stage_md(Stage.XRD),
        "plan_args": {"diffractometer": diffractometer.name, "sample_id": sample_id,
                      "program": program},
        "detectors": [diffractometer.name],
        "sample_id": sample_id,
        **(md or {}),
    }  # fmt: skip

    @bpp.run_decorator(md=_md)
    def inner() -> Generator[Msg, Any, Any]:
        if program is not None:
            yield from bps.mv(diffractometer.program, program)
        yield from bps.mv(diffractometer.sample_id, sample_id)
        yield from bps.checkpoint()
        yield from bps.trigger_and_read([diffractometer])

    return (yield from inner())


def measure_spectrum(
    spectrometer: Spectrometer,
    sample_id: str,
    *,
    insert_sample: PlanFactory | None = None,
    integration_time: float = 100.0,
    averages: int = 4,
    md: dict[str, Any] | None = None,
) -> Generator[Msg, Any, Any]:
    """Measure a sample's transmission: dark, reference (empty beam), then sample.

    Each spectrum goes to its own stream (``dark``, ``reference``, ``primary``), so
    analysis computes T = (S − D)/(R − D) from one run.

    Parameters
    ----------
    spectrometer : Spectrometer
        The instrument.
    sample_id : str
        The sample's id (for the start document).
    insert_sample : callable, optional
        A plan factory that puts the sample in the beam after the reference; without
        it the sample is assumed to be in place already and no reference is taken.
    integration_time : float, optional
        Milliseconds per scan, at most: shortened (:func:`unsaturated_exposure`) while
        the brightest spectrum, the empty beam or else the sample, saturates.
    averages : int, optional
        Scans averaged per spectrum.
    md : dict, optional
        Metadata for the start document.

    Yields
    ------
    msg : Msg
        Messages to the RunEngine.
    """
    if averages < 1:
        raise ValueError(f"measure_spectrum: averages must be >= 1, got {averages}")
    _md = {
        "plan_name": "measure_spectrum",
        **stage_md(Stage.SPECTRUM),
        "plan_args": {"spectrometer": spectrometer.name, "sample_id": sample_id,
                      "integration_time": integration_time, "averages": averages},
        "detectors": [spectrometer.name],
        "sample_id": sample_id,
        **(md or {}),
    }  # fmt: skip

    @bpp.run_decorator(md=_md)
    def inner() -> Generator[Msg, Any, Any]:
        yield from bps.mv(spectrometer.averages, averages)
        yield from bps.checkpoint()
        yield from bps.mv(spectrometer.source, True)
        yield from unsaturated_exposure(spectrometer, integration_time)
        yield from bps.mv(spectrometer.source, False)
        yield from bps.trigger_and_read([spectrometer], name="dark")
        yield from bps.mv(spectrometer.source, True)
        if insert_sample is not None:
            yield from bps.trigger_and_read([spectrometer], name="reference")
            yield from insert_sample()
        yield from bps.trigger_and_read([spectrometer], name="primary")
        yield from bps.mv(spectrometer.source, False)

    return (yield from inner())


def unsaturated_exposure(
    spectrometer: Spectrometer, integration_time: float
) -> Generator[Msg, Any, float]:
    """Set the longest integration time, from ``integration_time`` (ms) down, at which
    a spectrum of what is in the beam now is not saturated; returns it.

    Each try that saturates shrinks the time by :data:`EXPOSURE_STEP`, down to the
    instrument's shortest; still saturated after :data:`EXPOSURE_TRIES` tries, or at the
    shortest, raises :class:`~athanor.devices.spectrometer.Saturated`.
    """
    shortest = float(spectrometer.min_integration_time.get())
    time = integration_time
    for _ in range(EXPOSURE_TRIES):
        yield from bps.mv(spectrometer.integration_time, time)
        yield from bps.trigger(spectrometer, wait=True)
        if not (yield from bps.rd(spectrometer.saturated)):
            return time
        if time <= shortest:
            break
        time = max(math.floor(time * EXPOSURE_STEP), shortest)  # whole ms where it can
    raise Saturated(f"saturated at {time:g} ms integration", instrument=spectrometer.name)
