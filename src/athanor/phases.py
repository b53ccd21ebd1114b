"""The phases of the lab's chemistry and their crystal structures.

Shared vocabulary: the simulated ground truth makes these phases, the pattern
simulator draws them, the analysis fits them; none of them owns the list.
"""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable

PHASES = ("BaCO3", "TiO2", "Ba2TiO4", "BaTiO3")


def structure_path(phase: str) -> Traversable:
    """The CIF shipped for ``phase`` (one of :data:`PHASES`)."""
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; known phases: {', '.join(PHASES)}")
    return resources.files("athanor") / "structures" / f"{phase}.cif"
