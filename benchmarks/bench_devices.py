"""RunEngine cost of reading our devices, against a bare ``count`` of an ``ophyd.sim`` detector.

Every row is ``bluesky.plans.count`` on a fresh RunEngine; the furnace is read over
Modbus TCP from its emulator, the diffractometer scans (lab time at 10^5x) and its
pattern file is parsed. Milliseconds per event, median of the runs.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bluesky import RunEngine
from bluesky.plans import count
from ophyd.sim import det

from athanor.clock import ScaledClock
from athanor.devices.diffractometer import Diffractometer
from athanor.devices.furnace import Furnace
from athanor.drivers.aeris import Aeris
from athanor.drivers.eurotherm import Eurotherm
from athanor.simulators.aeris import AerisEmulator
from athanor.simulators.eurotherm import EurothermEmulator
from athanor.simulators.hosting import BackgroundLoop
from athanor.simulators.world import FixedTruth, PhaseState
from benchmarks.common import median, table

MIXTURE = FixedTruth(PhaseState({"BaTiO3": 0.7, "TiO2": 0.3}, {"BaTiO3": 50.0, "TiO2": 80.0}))


def _per_event(device: object, num: int, repeat: int) -> float:
    RE = RunEngine({}, context_managers=[])
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        RE(count([device], num=num))
        times.append((time.perf_counter() - start) / num * 1000)
    return median(times)


def main(quick: bool = False) -> None:
    num, repeat = (20, 3) if quick else (200, 5)
    clock = ScaledClock(1e5)
    rows = [["ophyd.sim det (baseline)", _per_event(det, num, repeat), 1.0]]
    with tempfile.TemporaryDirectory() as tmp, BackgroundLoop() as loop:
        url = loop.start(
            EurothermEmulator("f", "eurotherm3216", 1, "modbus-tcp://127.0.0.1:0", clock)
        )
        furnace = Furnace(Eurotherm(url, name="f"), clock, name="f")
        aeris = AerisEmulator(Path(tmp), MIXTURE, clock)
        xrd = Diffractometer(Aeris(loop.start(aeris), aeris.exchange_dir), clock, name="xrd")
        xrd.program.put("10-100_8-minutes")
        xrd.sample_id.put("S-1")
        rows.append(["Furnace (3 Modbus reads)", _per_event(furnace, num, repeat), 0.0])
        rows.append(["Diffractometer (scan, file, 9001 points)",
                     _per_event(xrd, max(num // 10, 3), repeat), 0.0])  # fmt: skip
    for row in rows[1:]:
        row[2] = row[1] / rows[0][1]
    table(
        "RunEngine time per event",
        ["device", "ms per event", "x bare count"],
        rows,
        note="python -m benchmarks devices; the diffractometer row includes its 8-minute "
        "scan at 10^5x (4.8 ms of wall time)",
    )


if __name__ == "__main__":
    main()
