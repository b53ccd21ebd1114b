"""The whole experiment: weigh, anneal, then measure XRD and UV-Vis on shared instruments."""

from __future__ import annotations

from collections.abc import Generator
from functools import partial
from typing import Any

import bluesky.plan_stubs as bps
from bluesky.utils import Msg

from athanor.devices.transfer import Move, Prepare
from athanor.protocols.anneal import anneal
from athanor.protocols.context import ExperimentContext
from athanor.protocols.measure import measure_spectrum, measure_xrd
from athanor.protocols.requests import Request, requires

BENCH = "bench"  # where a sample waits between instruments


@requires(
    furnace=Request("furnace"),
    diffractometer=Request("diffractometer"),
    spectrometer=Request("spectrometer"),
    transfer=Request("transfer", shared=True),
)
def synthesize_and_characterize(
    ctx: ExperimentContext,
    *,
    temperature_c: float,
    dwell_h: float,
    ramp_c_per_min: float,
    ba_ti_ratio: float = 1.0,
    dopant: float = 0.0,
    program: str | None = None,
    integration_time: float = 50.0,
    averages: int = 4,
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
        Dwell temperature, °C.
    dwell_h : float
        Hours at temperature.
    ramp_c_per_min : float
        Heating and cooling rate, °C per minute.
    ba_ti_ratio : float, optional
        Weighed Ba:Ti molar ratio of the precursors.
    dopant : float, optional
        Dopant fraction on the Ti site.
    program : str, optional
        Diffractometer scan program; the instrument's default when not given.
    integration_time : float, optional
        Spectrometer integration time, ms.
    averages : int, optional
        Spectra averaged.

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
