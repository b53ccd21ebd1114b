"""The simulated lab: every emulator of a lab config on loopback, wired into one world.

One clock, one materials ground truth, one sample registry: the transfer robot makes and
moves samples, each furnace's recorded temperature anneals the samples inside it, the
diffractometer measures a sample's true phases and the spectrometer sees the sample in
its beam. Clients reach every emulator over its real wire protocol.

Use::

    with simulate(load_lab("lab_configs/sim_lab.yaml")) as sim:   # athanor.lab.simulate
        resolved = sim.start()          # the lab config with real ports and pty paths
        lab = Lab.connect(resolved, sim.clock)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from athanor.clock import Clock, make_clock
from athanor.config_files import ConfigError
from athanor.lab_config import (
    DiffractometerConfig,
    FurnaceConfig,
    LabConfig,
    SpectrometerConfig,
    TransferConfig,
)
from athanor.simulators.aeris import AerisEmulator, AerisSimSettings
from athanor.simulators.eurotherm import EurothermEmulator, EurothermSimSettings
from athanor.simulators.hosting import BackgroundLoop, Emulator
from athanor.simulators.materials import ChemistrySettings, MaterialsTruth
from athanor.simulators.ocean_optics import OceanOpticsEmulator, OceanOpticsSimSettings
from athanor.simulators.samples import SampleRegistry
from athanor.simulators.transfer import TransferEmulator, TransferSimSettings

SettingsT = TypeVar("SettingsT", bound=BaseModel)


def sim_settings(lab: LabConfig, name: str, model: type[SettingsT]) -> SettingsT:
    """An instrument's ``sim:`` block checked by its emulator's settings model."""
    if lab.source is not None:
        return lab.source.validate(model, ("instruments", name, "sim"), f"instruments.{name}.sim")
    return model.model_validate(lab.instruments[name].sim)


@dataclass
class World:
    """What an emulator is wired into: the lab, its clock and the samples' world."""

    lab: LabConfig
    clock: Clock
    registry: SampleRegistry
    root: Path  # relative paths of the lab config are resolved against it
    beams: dict[str, OceanOpticsEmulator] = field(default_factory=dict)  # see samples


#: (name, instrument config, world) -> the emulator of one instrument
EmulatorFactory = Callable[[str, Any, World], Emulator]


def furnace_emulator(name: str, inst: FurnaceConfig, world: World) -> EurothermEmulator:
    settings = sim_settings(world.lab, name, EurothermSimSettings)
    furnace = EurothermEmulator(name, inst.model, inst.unit, inst.connection, world.clock, settings)
    world.registry.add_furnace(name, furnace, furnace.thermal.sample_temperature)
    return furnace


def diffractometer_emulator(name: str, inst: DiffractometerConfig, world: World) -> AerisEmulator:
    settings = sim_settings(world.lab, name, AerisSimSettings)
    host, port = _host_port(inst.connection)
    exchange = Path(inst.exchange_dir)
    return AerisEmulator(
        exchange if exchange.is_absolute() else world.root / exchange, world.registry,
        world.clock, settings.model_copy(update={"slots": inst.slots}), host=host, port=port,
        name=name,
    )  # fmt: skip


def spectrometer_emulator(name: str, inst: SpectrometerConfig, world: World) -> OceanOpticsEmulator:
    settings = sim_settings(world.lab, name, OceanOpticsSimSettings).for_model(inst.model)
    emulator = OceanOpticsEmulator(inst.connection, settings, clock=world.clock, name=name)
    world.beams[name] = emulator
    return emulator


def transfer_emulator(name: str, inst: TransferConfig, world: World) -> TransferEmulator:
    settings = sim_settings(world.lab, name, TransferSimSettings)
    return TransferEmulator(
        world.registry, world.clock, settings, connection=inst.connection, name=name
    )


class SimulatedLab:
    """Every emulator of a simulated lab config.

    Parameters
    ----------
    config
        A lab config with a ``simulation`` section.
    emulators
        Each instrument kind's :data:`EmulatorFactory` (``athanor.kinds.emulator_factories()``;
        ``athanor.lab.simulate`` passes them).
    clock
        The lab clock; by default a scaled clock at the config's ``time_scale``.
    root
        Folder relative paths in the config (the diffractometer's exchange folder) are
        resolved against; default the working directory.
    """

    def __init__(
        self,
        config: LabConfig,
        emulators: Mapping[str, EmulatorFactory],
        clock: Clock | None = None,
        *,
        root: Path | None = None,
    ) -> None:
        if config.simulation is None:
            raise ConfigError(
                f"lab {config.name!r} has no 'simulation' section: it describes real "
                "instruments, which 'athanor sim' cannot stand in for"
            )
        self.config = config
        self.clock = clock or make_clock(config.clock.time_scale)
        self.truth = MaterialsTruth(ChemistrySettings.from_lab(config), seed=config.simulation.seed)
        furnaces = config.of_kind("furnace")
        handling = min((f.limits.handling_temperature for f in furnaces.values()), default=200.0)
        self.registry = SampleRegistry(self.truth, self.clock, handling_temperature_c=handling)
        self.world = World(config, self.clock, self.registry, root or Path.cwd())
        self.emulators: dict[str, Emulator] = {}
        for name, inst in config.instruments.items():
            try:
                self.emulators[name] = emulators[inst.kind](name, inst, self.world)
            except ValueError as exc:
                raise ConfigError(f"instruments.{name}: {exc}") from None
        self.registry.subscribe(self._on_move)
        self.loop: BackgroundLoop | None = None
        self.connections: dict[str, str] = {}

    def _on_move(self, sample_id: str, source: str, target: str) -> None:
        """A sample entering or leaving a spectrometer's beam changes what it sees."""
        beams = self.world.beams
        if target in beams:
            beams[target].load(self.registry.optics(sample_id))
        elif source in beams:
            beams[source].load(None)

    def start(self) -> LabConfig:
        """Start every emulator; returns the config with the real connections."""
        self.loop = BackgroundLoop()
        try:
            for name, emulator in self.emulators.items():
                try:
                    self.connections[name] = self.loop.start(emulator)
                except OSError as exc:
                    inst = self.config.instruments[name]
                    raise ConfigError(
                        f"instruments.{name}.connection: cannot serve {inst.connection!r} "
                        f"({exc.strerror or exc}); pick a free port, or port 0 for any"
                    ) from None
        except Exception:
            self.close()
            raise
        return self.resolved()

    def resolved(self) -> LabConfig:
        """The lab config with every connection replaced by the one really served."""
        data = self.config.model_dump()
        for name, url in self.connections.items():
            data["instruments"][name]["connection"] = url
        return LabConfig.model_validate(data)

    def close(self) -> None:
        if self.loop is not None:
            self.loop.close()
            self.loop = None

    def __enter__(self) -> SimulatedLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _host_port(url: str) -> tuple[str, int]:
    host, _, port = url.split("://", 1)[-1].rpartition(":")
    return host, int(port)
