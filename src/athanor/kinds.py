"""Every kind of instrument, declared once.

An :class:`InstrumentKind` says everything the framework needs about one kind: its
lab-YAML config model (in :mod:`athanor.config`), how its driver opens from the config,
its ophyd device, its ``athanor check`` probe, its emulator and how a dry run estimates
the lab time of what a plan asks of it. Nothing else lists the kinds: adding an
instrument is an entry in :data:`KINDS` plus its driver, device and emulator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from athanor import profile
from athanor.clock import Clock
from athanor.devices.diffractometer import Diffractometer
from athanor.devices.furnace import Furnace
from athanor.devices.spectrometer import Spectrometer
from athanor.devices.transfer import Move, Prepare, SampleTransfer
from athanor.drivers.aeris import Aeris
from athanor.drivers.eurotherm import PV, Eurotherm
from athanor.drivers.modbus_link import AddressAbsent
from athanor.drivers.ocean_optics import OceanOpticsSerial, SeaBreezeSpectrometer
from athanor.drivers.transfer import ManualTransfer, TransferRobot
from athanor.lab_config import (
    DiffractometerConfig,
    FurnaceConfig,
    InstrumentConfig,
    SpectrometerConfig,
    TransferConfig,
)
from athanor.simulators import lab as simulated
from athanor.simulators.transfer import TransferSimSettings
from athanor.simulators.xrd_pattern import ScanProgram

AMBIENT_C = 25.0  # where a dry run's furnaces start


@dataclass
class InstrumentReport:
    """What ``athanor check`` found out about one instrument."""

    name: str
    kind: str
    model: str
    connection: str
    ok: bool = False
    identity: str = ""
    state: str = ""
    readings: dict[str, Any] = field(default_factory=dict)
    lacks: list[str] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0


#: (device, value set or None for a trigger) -> (what it does, lab seconds), or None
Estimate = Callable[[Any, Any], tuple[str, float] | None]


def _no_estimate(device: Any, value: Any) -> None:
    return None


@dataclass(frozen=True)
class InstrumentKind:
    """One kind of instrument: every piece the framework builds for it.

    ``open_driver(name, config, clock)`` makes the driver (nothing is sent yet);
    ``device(name, config, driver, clock)`` the ophyd device over it; ``probe(driver,
    report)`` fills an ``athanor check`` report; ``emulator`` builds its emulator in a
    simulated lab (:data:`athanor.simulators.lab.EmulatorFactory`);
    ``twin_connection`` is where a dry run's twin serves it; ``estimate`` gives the lab
    time of a message to its device.
    """

    name: str
    config: type[InstrumentConfig]
    open_driver: Callable[[str, Any, Clock], Any]
    device: Callable[[str, Any, Any, Clock], Any]
    probe: Callable[[Any, InstrumentReport], None]
    emulator: simulated.EmulatorFactory
    twin_connection: str
    estimate: Estimate = _no_estimate


# --------------------------------------------------------------------------- furnace


def _open_furnace(name: str, config: FurnaceConfig, clock: Clock) -> Eurotherm:
    return Eurotherm(
        config.connection, unit=config.unit, model=config.model, io_timeout=config.io_timeout,
        baudrate=config.baudrate, parity=config.parity, name=name, programmer=config.programmer,
    )  # fmt: skip


def _furnace(name: str, config: FurnaceConfig, driver: Eurotherm, clock: Clock) -> Furnace:
    return Furnace(driver, clock, name=name, limits=config.limits)


def _probe_furnace(driver: Eurotherm, report: InstrumentReport) -> None:
    ident = driver.identify()
    report.identity = (
        f"{ident['model']} unit {ident['unit']} (type {ident['type']}, version {ident['version']})"
    )
    reading = driver.read()
    low, high = driver.setpoint_limits()
    program = f"program {driver.program_state()}" if driver.has_programmer() else "no programmer"
    report.state = f"{driver.mode()}, {program}"
    try:
        full_resolution: float | str = driver.read_float(PV)
    except AddressAbsent:
        full_resolution = "no float area"
        report.lacks.append("IEEE-754 float area (0x8000 + 2*addr): 16-bit reads only")
    report.readings = {
        "temperature °C": reading.pv,
        "temperature, float °C": full_resolution,
        "working setpoint °C": reading.working_setpoint,
        "target setpoint °C": reading.target_setpoint,
        "output %": reading.output,
        "setpoint limits °C": f"{low:g}–{high:g}",
        "alarms": ", ".join(reading.status.alarms) or "none",
    }


def _estimate_furnace(furnace: Furnace, target: Any) -> tuple[str, float] | None:
    if target is None:
        return None
    segments = furnace.check(target)
    return profile.describe(segments), profile.duration(segments, AMBIENT_C)


# --------------------------------------------------------------------------- diffractometer


def _open_diffractometer(name: str, config: DiffractometerConfig, clock: Clock) -> Aeris:
    return Aeris(config.connection, config.exchange_dir, config.io_timeout, name=name)


def _diffractometer(
    name: str, config: DiffractometerConfig, driver: Aeris, clock: Clock
) -> Diffractometer:
    device = Diffractometer(driver, clock, name=name)
    device.program.put(config.program)
    return device


def _probe_diffractometer(driver: Aeris, report: InstrumentReport) -> None:
    status = driver.status()
    report.identity = f"Aeris-style, system {status.system}"
    report.state = "ready" if status.ready else "busy"
    report.readings = {"slot 1": driver.slot_state(1)}


def _estimate_scan(xrd: Diffractometer, value: Any) -> tuple[str, float] | None:
    if value is not None:  # a setting, not the scan
        return None
    program = xrd.program.get()
    return program, ScanProgram.parse(program).duration_s


# --------------------------------------------------------------------------- spectrometer


def _open_spectrometer(name: str, config: SpectrometerConfig, clock: Clock) -> Any:
    if config.connection.startswith("usb://"):
        return SeaBreezeSpectrometer(config.connection, name=name)
    return OceanOpticsSerial(
        config.connection, model=config.model, baudrate=config.baudrate,
        io_timeout=config.io_timeout, clock=clock,
        wavelength_coefficients=config.wavelength_coefficients, name=name,
    )  # fmt: skip


def _spectrometer(name: str, config: SpectrometerConfig, driver: Any, clock: Clock) -> Spectrometer:
    return Spectrometer(driver, name=name)


def _probe_spectrometer(driver: Any, report: InstrumentReport) -> None:
    report.identity = str(driver.identify())
    wavelengths = driver.wavelengths()
    report.state = "ready"
    report.readings = {
        "pixels": len(wavelengths),
        "range nm": f"{wavelengths[0]:.1f}–{wavelengths[-1]:.1f}",
        "full scale": driver.full_scale,
    }


# --------------------------------------------------------------------------- transfer


def _open_transfer(name: str, config: TransferConfig, clock: Clock) -> Any:
    if config.model == "manual":
        return ManualTransfer(name=name, clock=clock)
    return TransferRobot(config.connection, config.io_timeout, clock=clock, name=name)


def _transfer(name: str, config: TransferConfig, driver: Any, clock: Clock) -> SampleTransfer:
    return SampleTransfer(driver, clock, name=name)


def _probe_transfer(driver: Any, report: InstrumentReport) -> None:
    report.identity = type(driver).__name__
    report.state = str(driver.status())


_ROBOT = TransferSimSettings()


def _estimate_transfer(robot: SampleTransfer, request: Any) -> tuple[str, float] | None:
    if isinstance(request, Move):
        return f"{request.sample_id}: {request.source} → {request.target}", _ROBOT.move_time_s
    if isinstance(request, Prepare):
        return f"weigh {request.sample_id} {request.recipe}", _ROBOT.prepare_time_s
    return None


# --------------------------------------------------------------------------- the table

_REGISTERED = (
    InstrumentKind(
        name="furnace",
        config=FurnaceConfig,
        open_driver=_open_furnace,
        device=_furnace,
        probe=_probe_furnace,
        emulator=simulated.furnace_emulator,
        twin_connection="modbus-tcp://127.0.0.1:0",
        estimate=_estimate_furnace,
    ),
    InstrumentKind(
        name="diffractometer",
        config=DiffractometerConfig,
        open_driver=_open_diffractometer,
        device=_diffractometer,
        probe=_probe_diffractometer,
        emulator=simulated.diffractometer_emulator,
        twin_connection="tcp://127.0.0.1:0",
        estimate=_estimate_scan,
    ),
    InstrumentKind(
        name="spectrometer",
        config=SpectrometerConfig,
        open_driver=_open_spectrometer,
        device=_spectrometer,
        probe=_probe_spectrometer,
        emulator=simulated.spectrometer_emulator,
        twin_connection="pty://",
    ),
    InstrumentKind(
        name="transfer",
        config=TransferConfig,
        open_driver=_open_transfer,
        device=_transfer,
        probe=_probe_transfer,
        emulator=simulated.transfer_emulator,
        twin_connection="tcp://127.0.0.1:0",
        estimate=_estimate_transfer,
    ),
)
KINDS: dict[str, InstrumentKind] = {kind.name: kind for kind in _REGISTERED}


def kind_of(config: InstrumentConfig) -> InstrumentKind:
    """The registration of an instrument config's kind."""
    return KINDS[config.kind]


def emulator_factories() -> dict[str, simulated.EmulatorFactory]:
    """Each kind's emulator, for :class:`~athanor.simulators.lab.SimulatedLab`."""
    return {name: kind.emulator for name, kind in KINDS.items()}
