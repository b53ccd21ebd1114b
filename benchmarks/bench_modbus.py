"""Modbus wire round trips (driver vs raw pymodbus) and lab-time acceleration of an anneal.

Run: ``python -m benchmarks modbus`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import time

from pymodbus import FramerType
from pymodbus.client import ModbusTcpClient

from athanor.clock import ManualClock, ScaledClock
from athanor.drivers.eurotherm import Eurotherm
from athanor.profile import Dwell, Ramp
from athanor.simulators.eurotherm import EurothermEmulator
from athanor.simulators.hosting import BackgroundLoop
from benchmarks.common import median, percentile, table, time_calls

TRANSPORTS = {"Modbus TCP": "modbus-tcp://127.0.0.1:0", "RTU over TCP": "socket://127.0.0.1:0"}


def round_trips(loop: BackgroundLoop, repeat: int) -> None:
    rows = []
    for label, connection in TRANSPORTS.items():
        emulator = EurothermEmulator("bench", "eurotherm3216", 1, connection, ScaledClock(3600))
        url = loop.start(emulator)
        host, port = url.split("//")[1].split(":")
        framer = FramerType.SOCKET if url.startswith("modbus-tcp") else FramerType.RTU
        raw = ModbusTcpClient(host, port=int(port), framer=framer, timeout=1.0)
        raw.connect()
        driver = Eurotherm(url, unit=1, io_timeout=1.0)
        driver.config()
        read = raw.read_holding_registers
        raw_t = time_calls(lambda read=read: read(1, count=1, device_id=1), repeat)
        drv_t = time_calls(driver.pv, repeat)
        raw_m, drv_m = median(raw_t), median(drv_t)
        rows.append(
            [label, raw_m * 1e6, percentile(raw_t, 95) * 1e6, drv_m * 1e6,
             percentile(drv_t, 95) * 1e6, drv_m / raw_m]
        )  # fmt: skip
        raw.close()
        driver.close()
    table(
        "PV read round trip on loopback (one Modbus transaction)",
        ["transport", "raw pymodbus µs", "p95", "driver pv() µs", "p95", "driver / raw"],
        rows,
        f"median of {repeat} reads of register 1; target driver / raw <= 1.3",
    )


def anneal(loop: BackgroundLoop, clock, dwell_min: float, advance: bool) -> list[object]:
    """Ramp 20 °C/min to 900 °C, dwell, cool at 10 °C/min; poll PV every 30 lab s."""
    emulator = EurothermEmulator("anneal", "eurotherm2416", 1, "modbus-tcp://127.0.0.1:0", clock)
    with Eurotherm(loop.start(emulator), unit=1, model="eurotherm2416") as tc:
        lab0, wall0 = clock.now(), time.perf_counter()
        tc.run_profile([Ramp(900, 20), Dwell(dwell_min), Ramp(25, 10)])
        polls, late, last = 0, 0, clock.now()
        while True:
            pv = tc.pv()
            polls += 1
            now = clock.now()
            late += now - last > 60  # a poll more than two periods after the last one
            last = now
            if pv < 200 and tc.program_state() == "complete":
                break
            if advance:
                clock.advance(30)
            else:
                clock.sleep(30)
        lab, wall = clock.now() - lab0, time.perf_counter() - wall0
    return [lab / 3600, wall, lab / wall, polls, late]


def main(quick: bool) -> None:
    with BackgroundLoop() as loop:
        round_trips(loop, 300 if quick else 3000)
        dwell = 30 if quick else 240
        rows = [
            ["ScaledClock ×3600 (the sim lab)", *anneal(loop, ScaledClock(3600), dwell, False)],
            ["ManualClock (ceiling)", *anneal(loop, ManualClock(), dwell, True)],
        ]
    table(
        f"Full anneal over Modbus TCP: 20 °C/min to 900 °C, dwell {dwell} min, cool below 200 °C",
        ["clock", "lab h", "wall s", "lab s / wall s", "PV polls", "late polls"],
        rows,
        "a client polls PV every 30 lab s until the program ends and PV < 200 °C; target "
        ">= 3600 lab s per wall s; the ManualClock row advances time as fast as the wire and "
        "the thermal model allow (the headroom above the sim lab's scale); 'late polls' came "
        "more than 60 lab s after the previous one",
    )
