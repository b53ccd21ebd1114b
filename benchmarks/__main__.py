"""Run the benchmarks: ``python -m benchmarks [--quick] [NAME ...]`` (``make bench``).

Each ``bench_NAME.py`` module has ``main(quick: bool) -> None`` that prints its tables.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time

import benchmarks
from benchmarks.common import console


def available() -> list[str]:
    return sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules(benchmarks.__path__)
        if m.name.startswith("bench_")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"which to run (default all): {available()}")
    parser.add_argument("--quick", action="store_true", help="small sizes, for smoke runs")
    args = parser.parse_args(argv)
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {available()}")
    for name in names:
        console.rule(f"[bold]{name}[/]")
        start = time.perf_counter()
        importlib.import_module(f"benchmarks.bench_{name}").main(quick=args.quick)
        console.print(f"{name}: {time.perf_counter() - start:.1f} s", style="dim")
    return 0


if __name__ == "__main__":
    sys.exit(main())
