"""What a protocol promises the campaign, written down once.

A protocol plan (built-in or ``package.module:function``) tells the campaign how far an
experiment has come through its start documents, never through plan names:

- every run it opens carries the experiment's ids (``ExperimentContext.md()``);
- a run that anneals, measures a powder pattern or measures spectra says so with
  ``STAGE_KEY`` set to a :class:`Stage` (``stage_md(Stage.XRD)``), and names its
  measuring device first in ``detectors``;
- an XRD run reads a device with ``<name>_two_theta`` and ``<name>_counts`` (a
  :class:`~athanor.devices.diffractometer.Diffractometer`); a spectrum run has the
  streams ``dark``, ``reference`` and ``primary`` of a device with ``<name>_wavelengths``
  and ``<name>_counts`` (a :class:`~athanor.devices.spectrometer.Spectrometer`).

The campaign moves an experiment to ``running`` at its anneal run's start and to
``measuring`` at its first measurement's; it analyses the last run of each stage.
Leases are held in the name :func:`holder_id` gives an experiment.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

STAGE_KEY = "athanor_stage"


class Stage(StrEnum):
    """The stages of an experiment a campaign follows."""

    ANNEAL = "anneal"
    XRD = "xrd"
    SPECTRUM = "spectrum"


#: The experiment state a stage's run moves the experiment to.
STATE_AT_STAGE = {Stage.ANNEAL: "running", Stage.XRD: "measuring", Stage.SPECTRUM: "measuring"}
# Runs stored before the stage key existed are known by the built-in plans' names.
_STORED_BEFORE_STAGES = {
    "anneal": Stage.ANNEAL,
    "measure_xrd": Stage.XRD,
    "measure_spectrum": Stage.SPECTRUM,
}


def stage_md(stage: Stage) -> dict[str, str]:
    """Start-document metadata that marks a run as ``stage``."""
    return {STAGE_KEY: stage.value}


def stage_of(start: dict[str, Any]) -> Stage | None:
    """The stage a start document declares (None: a run the campaign does not follow)."""
    value = start.get(STAGE_KEY)
    if value is None:
        return _STORED_BEFORE_STAGES.get(start.get("plan_name", ""))
    try:
        return Stage(value)
    except ValueError:
        return None


def holder_id(campaign: str, number: int) -> str:
    """The name an experiment holds its instruments in: ``campaign#number``."""
    return f"{campaign}#{number}"


def holder_campaign(holder: str) -> str:
    """The campaign in a :func:`holder_id` ("" for another holder)."""
    return holder.rpartition("#")[0]


def holder_experiment(holder: str) -> int | None:
    """The experiment number in a :func:`holder_id` (None for another holder)."""
    _, _, number = holder.rpartition("#")
    return int(number) if number.isdigit() else None
