"""Milliseconds per spectrum: emulator synthesis, and a driver acquire over a pty.

Synthesis is what the emulator spends per ``S`` (detector noise, clipping, frame bytes);
its baseline in the same run is the bare noise draw for the same pixels (one Poisson and
one Gaussian array), the least any shot-noise model costs. The end-to-end figure is
:meth:`OceanOpticsSerial.acquire` (send ``S``, read, validate and decode the frame) against
a raw pyserial client that writes ``S`` and reads the same number of bytes from an
identical emulator. Both emulators run on a manual clock, so no exposure time is waited.
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import median, percentile, table, time_calls


def main(quick: bool) -> None:
    import serial

    from athanor.clock import ManualClock
    from athanor.drivers.ocean_optics import OceanOpticsSerial
    from athanor.simulators.hosting import BackgroundLoop
    from athanor.simulators.ocean_optics import OceanOpticsEmulator

    repeat = 20 if quick else 300

    def ms(times: list[float]) -> tuple[float, float]:
        return 1e3 * median(times), 1e3 * percentile(times, 95)

    rows: list[tuple[object, ...]] = []
    for model, scans in (("usb2000plus", 1), ("usb4000", 1), ("usb4000", 100)):
        emulator = OceanOpticsEmulator("pty://", {"model": model})
        emulator.source_on = True
        emulator.values["A"] = scans
        rng = np.random.default_rng(0)
        mean = emulator.electron_rate() * 0.1
        synth = time_calls(emulator.frame, repeat)

        def bare(m: np.ndarray = mean, r: np.random.Generator = rng) -> np.ndarray:
            return r.poisson(m) + r.normal(0, 50, m.size)

        rows.append(
            (
                f"{model}, {scans} scan{'s' * (scans > 1)}",
                mean.size,
                *ms(synth),
                *ms(time_calls(bare, repeat)),
            )
        )
    table(
        "Spectrum synthesis in the emulator (one S frame)",
        ["detector", "pixels", "median ms", "p95 ms", "bare noise ms", "bare p95 ms"],
        rows,
        note="target: a few ms per spectrum; reproduce: python -m benchmarks spectrometer",
    )

    rows = []
    with BackgroundLoop() as loop:
        for label, compression, scans in (
            ("WORD pixels", False, 1),
            ("WORD pixels, compressed", True, 1),
            ("DWORD pixels (10 scans)", False, 10),
        ):
            settings = {"model": "usb2000plus"}
            driven = OceanOpticsEmulator("pty://", settings, clock=ManualClock())
            raw_side = OceanOpticsEmulator("pty://", settings, clock=ManualClock())
            for emulator in (driven, raw_side):
                emulator.source_on = True
                emulator.values["A"] = scans
            driver = OceanOpticsSerial(loop.start(driven), io_timeout=2.0, clock=ManualClock())
            driver.set_compression(compression)
            size = 1 + 14 + (4 if scans > 1 else 2) * 2048 + 2
            raw = serial.Serial(loop.start(raw_side), 9600, timeout=2.0)

            def read_raw(port: serial.Serial = raw, n: int = size) -> None:
                port.reset_input_buffer()
                port.write(b"S")
                if len(port.read(n)) != n:
                    raise RuntimeError("raw read came back short")

            acquire = time_calls(driver.acquire, repeat)
            baseline = time_calls(read_raw, repeat)
            rows.append(
                (
                    label,
                    *ms(acquire),
                    *ms(baseline),
                    f"{median(acquire) / median(baseline):.2f}x",
                )
            )
            driver.close()
            raw.close()
    table(
        "End-to-end acquire over a pty (USB2000+, 2048 pixels)",
        ["frame", "driver ms", "driver p95", "raw pyserial ms", "raw p95", "ratio"],
        rows,
        note="raw pyserial reads the uncompressed frame of the same pixel count; "
        "reproduce: python -m benchmarks spectrometer",
    )
