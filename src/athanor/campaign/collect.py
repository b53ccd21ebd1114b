"""Collect what an experiment measured from its Bluesky documents, as it streams or later.

The same collector reads live documents (during a campaign) and stored ones (for
re-analysis), so both see exactly the same measurements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from athanor.analysis import Measurement
from athanor.analysis.spectra import Spectrum
from athanor.protocols.contract import Stage, stage_of


@dataclass
class RunData:
    """One run's stage (:mod:`athanor.protocols.contract`), start document and events."""

    uid: str
    stage: Stage | None
    start: dict[str, Any]
    streams: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    configuration: dict[str, dict[str, Any]] = field(default_factory=dict)
    exit_status: str | None = None


class Collector:
    """A Bluesky callback that keeps the runs it sees, grouped by stream."""

    def __init__(self) -> None:
        self.runs: list[RunData] = []
        self._stream_of: dict[str, tuple[RunData, str]] = {}

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if name == "start":
            self.runs.append(RunData(doc["uid"], stage_of(doc), doc))
        elif name == "descriptor":
            run = next(r for r in reversed(self.runs) if r.uid == doc["run_start"])
            stream = doc.get("name", "primary")
            run.streams.setdefault(stream, [])
            run.configuration[stream] = {
                key: value
                for device in doc.get("configuration", {}).values()
                for key, value in device.get("data", {}).items()
            }
            self._stream_of[doc["uid"]] = (run, stream)
        elif name == "event":
            run, stream = self._stream_of[doc["descriptor"]]
            run.streams[stream].append(doc["data"])
        elif name == "stop":
            for run in self.runs:
                if run.uid == doc["run_start"]:
                    run.exit_status = doc.get("exit_status")

    def last(self, stage: Stage) -> RunData | None:
        return next((r for r in reversed(self.runs) if r.stage == stage), None)


def measurements(collector: Collector) -> list[Measurement]:
    """The XRD pattern and the transmission spectra of an experiment's runs."""
    found: list[Measurement] = []
    xrd = collector.last(Stage.XRD)
    if xrd is not None and xrd.streams.get("primary"):
        event = xrd.streams["primary"][-1]
        device = xrd.start["detectors"][0]
        found.append(
            Measurement(
                "xrd",
                {
                    "two_theta": np.asarray(event[f"{device}_two_theta"], float),
                    "counts": np.asarray(event[f"{device}_counts"], float),
                    "counting_time": event.get(f"{device}_counting_time") or None,
                },
                source=xrd.uid,
            )
        )
    spectra = collector.last(Stage.SPECTRUM)
    if spectra is not None and {"dark", "reference", "primary"} <= set(spectra.streams):
        device = spectra.start["detectors"][0]

        def spectrum(stream: str) -> Spectrum:
            event, config = spectra.streams[stream][-1], spectra.configuration[stream]
            return Spectrum(
                np.asarray(event[f"{device}_wavelengths"], float),
                np.asarray(event[f"{device}_counts"], float),  # mean counts per scan
                integration_ms=config.get(f"{device}_integration_time"),
                full_scale=config.get(f"{device}_full_scale"),
                source=f"{spectra.uid}:{stream}",
            )

        found.append(
            Measurement(
                "transmission",
                {
                    "sample": spectrum("primary"),
                    "dark": spectrum("dark"),
                    "reference": spectrum("reference"),
                },
                source=spectra.uid,
            )
        )
    return found
