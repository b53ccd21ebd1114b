"""Campaign files for tests: the demo campaign, shrunk, on a simulated lab sped up."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parent.parent
LAB_CONFIGS = ROOT / "lab_configs"


def write_campaign(
    folder: Path,
    name: str = "mini",
    *,
    lab: str = "sim_lab.yaml",
    time_scale: float = 10_000,
    instruments: Callable[[dict[str, Any], Path], None] | None = None,
    **changes: Any,
) -> Path:
    """The demo campaign named ``name`` (budget 10) on ``lab_configs/<lab>`` at
    ``time_scale``, written into ``folder``; ``instruments(instruments, folder)`` may
    change the lab's instruments, ``changes`` the campaign's keys."""
    lab_config = yaml.safe_load((LAB_CONFIGS / lab).read_text())
    lab_config["clock"]["time_scale"] = time_scale
    if "simulation" in lab_config:  # a served lab's instruments write where they serve
        lab_config["instruments"]["xrd"]["exchange_dir"] = str(folder / "xrd")
    if instruments is not None:
        instruments(lab_config["instruments"], folder)
    (folder / "lab.yaml").write_text(yaml.safe_dump(lab_config))
    campaign = yaml.safe_load((LAB_CONFIGS / "campaigns" / "demo.yaml").read_text())
    campaign.update(name=name, lab="lab.yaml", initial_experiments=4)
    campaign["budget"] = {"max_experiments": 10}
    campaign.update(changes)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(campaign))
    return path
