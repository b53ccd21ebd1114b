"""The lab config: its instruments, their connections and limits, its clock.

Shared vocabulary: the client side (drivers, devices, ``athanor check``) and the
simulated lab both read it; it knows nothing of campaigns or the planner.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, FiniteFloat, field_validator, model_validator

from athanor.config_files import UNION_TAGS, ConfigError, SourcedModel, load, located
from athanor.schema import StrictModel

_SCHEMES = ("modbus-tcp", "socket", "rfc2217", "tcp", "loop", "pty", "usb", "manual")


def is_serial_device(url: str) -> bool:
    """A serial device path (``/dev/ttyUSB0``, ``COM3``) rather than a URL."""
    return url.startswith("/") or url.upper().startswith("COM")


def check_connection(url: str) -> str:
    """A connection is a serial device path or a URL with a scheme athanor speaks."""
    if not url or not url.strip():
        raise ValueError("a connection must not be empty")
    if is_serial_device(url):
        return url
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ValueError(
            f"unknown scheme {parts.scheme!r}; use a serial device path (/dev/ttyUSB0) or one "
            f"of {', '.join(s + '://' for s in _SCHEMES)}"
        )
    if parts.scheme in ("modbus-tcp", "socket", "rfc2217", "tcp"):
        if not parts.hostname:
            raise ValueError(f"{url!r} names no host; write {parts.scheme}://HOST:PORT")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"{url!r} has a port that is not a number in 0-65535") from None
        if port is None:
            raise ValueError(f"{url!r} names no port; write {parts.scheme}://HOST:PORT")
    return url


def names_a_place(url: str) -> bool:
    """Whether a connection is one fixed place (a device, a host and port) that no other
    instrument may have, rather than "a new one" (port 0, ``pty://``, ``manual://``)."""
    if is_serial_device(url):
        return True
    parts = urlsplit(url)
    return bool(parts.hostname) and parts.port not in (None, 0)


Connection = Annotated[str, Field(description="serial device path or URL")]


class FurnaceLimits(StrictModel):
    """Limits the device and driver enforce on top of the instrument's own."""

    max_temperature: float = Field(1100.0, gt=0, le=1800, description="°C")
    min_temperature: float = Field(0.0, ge=-50, description="°C")
    max_ramp_rate: float = Field(20.0, gt=0, le=100, description="°C per minute")
    handling_temperature: float = Field(
        200.0, gt=0, le=400, description="°C below which a sample may be moved"
    )

    @model_validator(mode="after")
    def _ordered(self) -> FurnaceLimits:
        if self.min_temperature >= self.max_temperature:
            raise ValueError(
                f"min_temperature ({self.min_temperature}) must be below max_temperature "
                f"({self.max_temperature})"
            )
        return self


class InstrumentConfig(StrictModel):
    """What every instrument of a lab has; each kind narrows ``kind`` and ``model``."""

    kind: str
    model: str
    connection: Connection
    io_timeout: float = Field(1.0, gt=0, le=60, description="wall seconds per request")
    sim: dict[str, Any] = Field(default_factory=dict, description="emulator settings")

    _check_connection = field_validator("connection")(lambda cls, v: check_connection(v))


class FurnaceConfig(InstrumentConfig):
    kind: Literal["furnace"]
    model: Literal["eurotherm3216", "eurotherm2416"] = "eurotherm3216"
    unit: int = Field(1, ge=1, le=254, description="Modbus unit address")
    baudrate: Literal[1200, 2400, 4800, 9600, 19200] = 9600
    parity: Literal["N", "E", "O"] = "N"
    programmer: bool | None = Field(
        None, description="has the programmer option; unset: asked of the controller once"
    )
    limits: FurnaceLimits = Field(default_factory=FurnaceLimits)


class DiffractometerConfig(InstrumentConfig):
    kind: Literal["diffractometer"]
    model: Literal["aeris"] = "aeris"
    exchange_dir: str = Field(description="folder where the instrument writes <sample>.xrdml")
    program: str = Field("10-100_8-minutes", description="default scan program")
    slots: int = Field(1, ge=1, le=100)


class SpectrometerConfig(InstrumentConfig):
    kind: Literal["spectrometer"]
    model: Literal["usb2000", "usb2000plus", "usb4000", "flame"] = "usb2000plus"
    baudrate: Literal[9600, 19200, 38400, 57600, 115200] = 9600
    wavelength_coefficients: list[FiniteFloat] | None = Field(
        None,
        min_length=4,
        max_length=4,
        description="c0..c3 of λ(pixel), nm, for firmware that does not report them",
    )


class TransferConfig(InstrumentConfig):
    kind: Literal["transfer"]
    model: Literal["simulated", "manual"] = "simulated"


InstrumentSpec = Annotated[
    FurnaceConfig | DiffractometerConfig | SpectrometerConfig | TransferConfig,
    Field(discriminator="kind"),
]
UNION_TAGS.update({"furnace", "diffractometer", "spectrometer", "transfer"})


class ClockConfig(StrictModel):
    time_scale: float = Field(
        1.0, gt=0, le=1e7, description="lab seconds per wall second; 1 for real hardware"
    )


class SimulationConfig(StrictModel):
    """Present in a simulated lab: the ground truth and its randomness."""

    seed: int = 0
    chemistry: dict[str, Any] = Field(default_factory=dict)


class LabConfig(SourcedModel):
    """A lab: its instruments, its clock and, when simulated, its simulated world."""

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    clock: ClockConfig = Field(default_factory=ClockConfig)
    simulation: SimulationConfig | None = None
    instruments: dict[str, InstrumentSpec]

    @field_validator("instruments")
    @classmethod
    def _names(cls, instruments: dict[str, Any]) -> dict[str, Any]:
        if not instruments:
            raise ValueError("a lab needs at least one instrument")
        for name in instruments:
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(
                    f"instrument name {name!r} may hold only letters, digits, '_' and '-'"
                )
        return instruments

    @model_validator(mode="after")
    def _served_on_loopback(self) -> LabConfig:
        if self.simulation is None:
            return self
        for name, inst in self.instruments.items():
            # a pseudo-terminal is where a started emulator serves (pty:// resolved)
            if is_serial_device(inst.connection) and not inst.connection.startswith("/dev/pts/"):
                raise ValueError(
                    f"instruments.{name}.connection: {inst.connection!r} is a serial device, "
                    "but this lab is simulated (it has a 'simulation' section) and its "
                    "emulators serve on loopback: use e.g. pty:// or a HOST:PORT URL with "
                    "port 0, or remove 'simulation' to use the real instrument"
                )
        return self

    def of_kind(self, kind: str) -> dict[str, Any]:
        """The instruments of one kind, by name."""
        return {n: i for n, i in self.instruments.items() if i.kind == kind}

    @property
    def simulated(self) -> bool:
        return self.simulation is not None


def check_folders(lab: LabConfig) -> None:
    """Every diffractometer's ``exchange_dir`` is usable: a simulated instrument writes
    its patterns there (the folder, or the nearest one that exists, must be writable); a
    real one must already be there to read. ConfigError names the key and the folder."""
    for name, inst in lab.of_kind("diffractometer").items():
        folder = Path(inst.exchange_dir).expanduser()
        if lab.simulated:
            existing = next(p for p in (folder, *folder.parents) if p.exists())
            usable = existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)
            need = f"a folder the simulated {name} can write ({existing} is not)"
        else:
            usable = folder.is_dir() and os.access(folder, os.R_OK | os.X_OK)
            need = f"an existing folder this host can read, where {name} writes its patterns"
        if not usable:
            raise ConfigError(
                located(lab.source, ("instruments", name, "exchange_dir"),
                        f"{str(folder)!r} is not allowed: it must be {need}")
            )  # fmt: skip


def check_each_once(lab: LabConfig) -> None:
    """No two entries are one instrument: the same connection (furnaces may share a
    Modbus line at different unit addresses) or the same diffractometer folder.
    ConfigError names the later entry's key, the value and whose it is too."""
    _one_per_connection(lab)
    _one_per_folder(lab)


def _one_per_connection(lab: LabConfig) -> None:
    users: dict[str, list[tuple[str, int | None]]] = {}
    for name, inst in lab.instruments.items():
        if not names_a_place(inst.connection):
            continue
        unit = inst.unit if isinstance(inst, FurnaceConfig) else None
        for other, other_unit in users.setdefault(inst.connection, []):
            if unit is None or other_unit is None or unit == other_unit:
                at = repr(inst.connection) + ("" if unit is None else f" unit {unit}")
                raise ConfigError(
                    located(lab.source, ("instruments", name, "connection"),
                            f"{at} is {other}'s too: two entries for one instrument; give each "
                            "its own connection (furnaces may share a Modbus line at different "
                            "unit addresses)")
                )  # fmt: skip
        users[inst.connection].append((name, unit))


def _one_per_folder(lab: LabConfig) -> None:
    folders: dict[str, str] = {}
    for name, inst in lab.of_kind("diffractometer").items():
        other = folders.setdefault(os.path.normpath(Path(inst.exchange_dir).expanduser()), name)
        if other != name:
            raise ConfigError(
                located(lab.source, ("instruments", name, "exchange_dir"),
                        f"{inst.exchange_dir!r} is {other}'s folder too; each diffractometer "
                        "needs a folder of its own, so that every pattern is known to come "
                        "from it")
            )  # fmt: skip


def load_lab(path: str | Path) -> LabConfig:
    """Read and check a lab YAML file."""
    lab = load(path, LabConfig, "lab config")
    check_each_once(lab)
    return lab
