"""The one distribution maps drivers/, protocols/ and simulators/ under athanor."""

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent
ROOTS = {
    "athanor": ROOT / "src" / "athanor",
    "athanor.drivers": ROOT / "drivers",
    "athanor.protocols": ROOT / "protocols",
    "athanor.simulators": ROOT / "simulators",
}


def _packages_on_disk() -> set[str]:
    found = set()
    for name, folder in ROOTS.items():
        for init in folder.rglob("__init__.py"):
            rel = init.parent.relative_to(folder).parts
            found.add(".".join((name, *rel)))
    return found


def test_every_package_is_listed_in_pyproject():
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    missing = _packages_on_disk() - listed
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_subpackages_import_under_athanor():
    for name in ("athanor.drivers", "athanor.protocols", "athanor.simulators"):
        module = importlib.import_module(name)
        assert Path(module.__file__).parent == ROOTS[name]


def test_no_generic_top_level_packages(tmp_path):
    # Run outside the checkout, so only what is installed can be imported.
    for generic in ("drivers", "protocols", "simulators"):
        result = subprocess.run(
            [sys.executable, "-c", f"import {generic}"], cwd=tmp_path, capture_output=True
        )
        assert result.returncode != 0, f"the install puts a top-level {generic!r} on the path"
