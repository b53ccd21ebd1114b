"""Anneal a sample: a ramp, dwell and cool profile run in the furnace's controller."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import Msg

from athanor import profile
from athanor.devices.furnace import Furnace
from athanor.protocols.contract import Stage, stage_md


def anneal(
    furnace: Furnace,
    temperature: float,
    dwell_hours: float,
    ramp_rate: float,
    *,
    cool_rate: float | None = None,
    cool_to: float = 25.0,
    record_every: float = 300.0,
    md: dict[str, Any] | None = None,
) -> Generator[Msg, Any, Any]:
    """Ramp to ``temperature``, hold, and cool, recording the furnace as it goes.

    The whole profile is loaded into the controller's programmer, so it finishes (and
    cools) even if this host dies. The plan reads the furnace every ``record_every``
    lab seconds until the profile has ended and the furnace is cool enough to handle.

    Parameters
    ----------
    furnace : Furnace
        The furnace to run the profile on.
    temperature : float
        Dwell temperature, °C.
    dwell_hours : float
        Time at ``temperature``, hours.
    ramp_rate : float
        Heating rate, °C per minute (also the cooling rate unless ``cool_rate`` is given).
    cool_rate : float, optional
        Cooling rate, °C per minute.
    cool_to : float, optional
        Setpoint the profile ends on, °C.
    record_every : float, optional
        Lab seconds between two readings of the furnace.
    md : dict, optional
        Metadata for the start document (campaign, experiment and sample ids ...).

    Yields
    ------
    msg : Msg
        Messages to the RunEngine.
    """
    segments = profile.anneal(temperature, dwell_hours, ramp_rate, cool_rate, cool_to)
    furnace.check(segments)  # refuse before the run opens
    _md = {
        "plan_name": "anneal",
        **stage_md(Stage.ANNEAL),
        "plan_args": {
            "furnace": furnace.name,
            "temperature": temperature,
            "dwell_hours": dwell_hours,
            "ramp_rate": ramp_rate,
            "cool_rate": cool_rate,
            "cool_to": cool_to,
        },
        "detectors": [furnace.name],
        "furnace": furnace.name,
        "predicted_duration": profile.duration(segments, start=cool_to),
        **(md or {}),
    }

    @bpp.run_decorator(md=_md)
    def inner() -> Generator[Msg, Any, Any]:
        yield from bps.checkpoint()
        status = yield from bps.abs_set(furnace, segments, group="anneal")
        while not status.done:
            yield from bps.trigger_and_read([furnace])
            yield from bps.sleep(furnace.clock.to_wall(record_every))
        yield from bps.wait(group="anneal")  # raises if the profile failed
        yield from bps.trigger_and_read([furnace])

    return (yield from inner())
