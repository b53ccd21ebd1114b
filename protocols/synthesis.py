"""The whole experiment: weigh, anneal, then measure XRD and UV-Vis on shared instruments."""

from __future__ import annotations

from collections.abc import Generator
from functools import partial
from typing import Annotated, Any

import bluesky.plan_stubs as bps
from bluesky.utils import Msg
from pydantic import Field

from athanor.devices.transfer import Move, Prepare
from athanor.protocols.anneal import anneal
from athanor.protocols.context import ExperimentContext
from athanor.protocols.measure import measure_spectrum, measure_xrd
from athanor.protocols.parameters import LabChoice, LabLimit, diffractometer_programs
from athanor.protocols.requests import Request, requires

BENCH = "bench"  # where a sample waits between instruments

# What each parameter may be; the lab's own limits and programs apply on top.
Temperature = Annotated[
    float,
    Field(gt=0, allow_inf_nan=False),
    LabLimit("furnace", "limits.max_temperature", "max", " °C"),
    LabLimit("furnace", "limits.min_temperature", "min", " °C"),
]
DwellHours = Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)]
RampRate = Annotated[
    float,
    Field(gt=0, allow_inf_nan=False),
    LabLimit("furnace", "limits.max_ramp_rate", "max", " °C/min"),
]
MolarRatio = Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)]
SiteFraction = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]
ScanProgramName = Annotated[
    str | None, LabChoice("diffractometer", diffractometer_programs, "scan program")
]
IntegrationMs = Annotated[float, Field(ge=1, le=65535, allow_inf_nan=False)]
Averages = Annotated[int, Field(ge=1, le=5000)]


@requires(
    furnace=Request("furnace"),
    diffractometer=Request("diffractometer"),
    spectrometer=Request("spectrometer"),
    transfer=Request("transfer", shared=True),
)
def synthesize_and_characterize(
    ctx: ExperimentContext,
    *,
    temperature_c: Temperature,
    dwell_h: DwellHours,
    ramp_c_per_min: RampRate,
    ba_ti_ratio: MolarRatio = 1.0,
    dopant: SiteFraction = 0.0,
    program: ScanProgramName = None,
    integration_time: IntegrationMs = 50.0,
    averages: Averages = 4,
) -> Generator[Msg, Any, Any]:
    """Make one sample and measure it: the standard solid-state synthesis experiment.

    The sample is weighed out from the recipe, carried into the experiment's furnace and
    annealed (ramp, dwell, cool in the controller). Once it is cool enough to handle, it
    waits for any free diffractometer, which takes it out of the furnace (the furnace is
    given back then), then for any free spectrometer, each held for one sample at a time.

    Parameters
    ----------
    ctx : ExperimentContext
        The experiment's ids and instruments (its furnace already held).
    temperature_c : float
        Dwell temperature, °C; within every furnace's limits.
    dwell_h : float
        Hours at temperature, 0 to 1000.
    ramp_c_per_min : float
        Heating and cooling rate, °C per minute; above 0, at most every furnace's limit.
    ba_ti_ratio : float, optional
        Weighed Ba:Ti molar ratio of the precursors, above 0 and at most 10.
    dopant : float, optional
        Dopant fraction on the Ti site, 0 to below 1.
    program : str, optional
        Diffractometer scan program, one every diffractometer has; the instrument's
        default when not given.
    integration_time : float, optional
        Spectrometer integration time, 1 to 65535 ms.
    averages : int, optional
        Spectra averaged, 1 to 5000.

    Yields
    ------
    msg : Msg
        Messages to the RunEngine.
    """
    sample, furnace, robot = ctx.sample_id, ctx.furnace, ctx.transfer
    cool_to = min(furnace.limits.handling_temperature - 50, 100.0)
    recipe = {"ba_ti_ratio": ba_ti_ratio, "dopant": dopant}
    yield from bps.mv(robot, Prepare(sample, recipe))
    yield from bps.mv(robot, Move(sample, "rack", furnace.name))
    yield from anneal(
        furnace, temperature_c, dwell_h, ramp_c_per_min, cool_to=cool_to, md=ctx.md(recipe=recipe)
    )

    def on_the_diffractometer(xrd: Any) -> Generator[Msg, Any, Any]:
        yield from bps.mv(robot, Move(sample, furnace.name, xrd.name))
        yield from ctx.release("furnace")
        yield from measure_xrd(xrd, sample, program=program, md=ctx.md())
        yield from ctx.using("spectrometer", partial(on_the_spectrometer, xrd))

    def on_the_spectrometer(xrd: Any, uvvis: Any) -> Generator[Msg, Any, Any]:
        yield from bps.mv(robot, Move(sample, xrd.name, BENCH))
        yield from ctx.release("diffractometer")

        def insert() -> Generator[Msg, Any, Any]:
            yield from bps.mv(robot, Move(sample, BENCH, uvvis.name))

        yield from measure_spectrum(
            uvvis, sample, insert_sample=insert, integration_time=integration_time,
            averages=averages, md=ctx.md(),
        )  # fmt: skip
        yield from bps.mv(robot, Move(sample, uvvis.name, "storage"))

    yield from ctx.using("diffractometer", on_the_diffractometer)
