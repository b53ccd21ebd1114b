"""Sample logistics of the simulated lab: which sample is where, and what it has been through.

One :class:`SampleRegistry` is shared by the whole simulated lab. The transfer emulator
creates and moves samples; each furnace emulator registers its recorded temperature
(a :class:`~athanor.simulators.world.TemperatureHistory`) and a callable giving its
temperature now; the diffractometer and spectrometer emulators look samples up through
the :class:`~athanor.simulators.world.SampleTruth` methods :meth:`SampleRegistry.phases`
and :meth:`SampleRegistry.optics`. Wiring::

    truth = MaterialsTruth(ChemistrySettings.from_lab(lab), seed=lab.simulation.seed)
    registry = SampleRegistry(truth, clock)
    for name, furnace in furnace_emulators.items():           # EurothermEmulator
        registry.add_furnace(name, furnace.thermal, furnace.thermal.sample_temperature)
    robot = TransferEmulator(registry, clock, TransferSimSettings.from_lab(lab, "robot"),
                             connection=lab.instruments["robot"].connection)
    xrd = AerisEmulator(exchange_dir, registry, clock, ...)   # calls registry.phases(id)

Locations are names: ``rack`` (where samples are made), a furnace name, ``transfer`` (in
the robot's gripper), ``xrd:slot1``, ``uvvis``, and ``lost``. A name with a ``:`` is a
slot and holds one sample. When a sample leaves a furnace its chemistry is advanced along
that furnace's history from when it went in to now; repeated anneals accumulate. A furnace
above the handling temperature (200 °C) is never opened: a move into or out of it is
refused. The truth is for emulators, tests and benchmarks, never for the planner.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from athanor.clock import Clock
from athanor.simulators.materials import Batch, Composition, MaterialsTruth, ReactionState
from athanor.simulators.world import OpticalProperties, PhaseState, TemperatureHistory

RACK = "rack"
GRIPPER = "transfer"
LOST = "lost"
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class MoveRefused(ValueError):
    """A request the lab's rules forbid; ``kind`` says which rule.

    Kinds: ``unknown_sample``, ``sample_exists``, ``bad_name``, ``unknown_location``,
    ``not_at_source``, ``occupied``, ``hot``, ``lost``.
    """

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


@dataclass(frozen=True)
class Visit:
    """A sample arrived at ``location`` at lab time ``time`` (s)."""

    time: float
    location: str


@dataclass
class Sample:
    """One pellet: what was asked for, what was really weighed, where it is and has been."""

    id: str
    composition: Composition
    batch: Batch
    state: ReactionState
    visits: list[Visit] = field(default_factory=list)
    lost_reason: str = ""

    @property
    def location(self) -> str:
        return self.visits[-1].location

    @property
    def since(self) -> float:
        return self.visits[-1].time


@dataclass(frozen=True)
class _Furnace:
    history: TemperatureHistory
    temperature: Callable[[], float]
    handling_temperature_c: float


class SampleRegistry:
    """Every sample of the simulated lab; thread-safe.

    Parameters
    ----------
    truth
        The materials ground truth that weighs and anneals samples.
    clock
        The lab clock: timestamps of every move, the end of every anneal.
    handling_temperature_c
        A furnace hotter than this is not opened (°C).
    locations
        The places besides furnaces, ``rack``, ``transfer`` and ``lost`` that exist; None
        accepts any well-formed name.
    """

    def __init__(
        self,
        truth: MaterialsTruth,
        clock: Clock,
        *,
        handling_temperature_c: float = 200.0,
        locations: Iterable[str] | None = None,
    ) -> None:
        self.truth = truth
        self.clock = clock
        self.handling_temperature_c = handling_temperature_c
        self._locations = None if locations is None else set(locations) | {RACK, GRIPPER}
        self._furnaces: dict[str, _Furnace] = {}
        self._samples: dict[str, Sample] = {}
        self._listeners: list[Callable[[str, str, str], None]] = []
        self._lock = threading.RLock()

    # ---- set-up

    def add_furnace(
        self,
        name: str,
        history: TemperatureHistory,
        temperature: Callable[[], float],
        handling_temperature_c: float | None = None,
    ) -> None:
        """Register a furnace: its recorded trace, its temperature now (°C) and, when it
        differs from the registry's, the temperature below which it may be opened."""
        _check_name(name, "furnace name")
        handling = (
            self.handling_temperature_c
            if handling_temperature_c is None
            else float(handling_temperature_c)
        )
        with self._lock:
            self._furnaces[name] = _Furnace(history, temperature, handling)

    @property
    def furnaces(self) -> list[str]:
        return list(self._furnaces)

    # ---- samples

    def create(self, sample_id: str, composition: Composition, location: str = RACK) -> Sample:
        """Weigh a new sample (with the truth's scatter) and put it at ``location``."""
        with self._lock:
            self.check_create(sample_id, location)
            sample = Sample(
                id=sample_id,
                composition=composition,
                batch=self.truth.weigh(sample_id, composition),
                state=ReactionState(),
                visits=[Visit(self.clock.now(), location)],
            )
            self._samples[sample_id] = sample
            return sample

    def check_create(self, sample_id: str, location: str = RACK) -> None:
        """Raise :class:`MoveRefused` unless a new sample ``sample_id`` may go to ``location``."""
        _check_name(sample_id, "sample id")
        with self._lock:
            if sample_id in self._samples:
                raise MoveRefused("sample_exists", f"sample {sample_id} already exists")
            self._check_destination(location, sample_id)
            self._check_cool(location)

    def get(self, sample_id: str) -> Sample:
        """The sample record; raises KeyError for an unknown id."""
        with self._lock:
            try:
                return self._samples[sample_id]
            except KeyError:
                raise KeyError(f"unknown sample {sample_id!r}") from None

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._samples

    def __len__(self) -> int:
        return len(self._samples)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._samples)

    def location(self, sample_id: str) -> str:
        return self.get(sample_id).location

    def at(self, location: str) -> list[str]:
        """Ids of the samples at ``location``."""
        with self._lock:
            return [s.id for s in self._samples.values() if s.location == location]

    # ---- moves

    def check_move(self, sample_id: str, source: str, dest: str) -> None:
        """Raise :class:`MoveRefused` unless ``sample_id`` may go from ``source`` to ``dest``."""
        with self._lock:
            sample = self._known(sample_id)
            if sample.location == LOST:
                raise MoveRefused("lost", f"sample {sample_id} is lost ({sample.lost_reason})")
            if sample.location != source:
                raise MoveRefused(
                    "not_at_source", f"sample {sample_id} is at {sample.location}, not {source}"
                )
            self._check_destination(dest, sample_id)
            for place in (source, dest):
                self._check_cool(place)

    def move(self, sample_id: str, dest: str) -> Sample:
        """Move a sample from where it is to ``dest`` now (lab time).

        Leaving a furnace anneals the sample along the furnace's history since it went in.
        """
        with self._lock:
            sample = self._known(sample_id)
            source = sample.location
            self.check_move(sample_id, source, dest)
            self._leave(sample)
            sample.visits.append(Visit(self.clock.now(), dest))
            for listener in self._listeners:
                listener(sample_id, source, dest)
            return sample

    def subscribe(self, listener: Callable[[str, str, str], None]) -> None:
        """Call ``listener(sample_id, source, dest)`` after every move (e.g. so an
        instrument sees the sample that arrived in it)."""
        self._listeners.append(listener)

    def mark_lost(self, sample_id: str, reason: str) -> None:
        """The sample is gone (dropped, broken); it keeps the chemistry it had."""
        with self._lock:
            sample = self._known(sample_id)
            if sample.location in self._furnaces:
                self._leave(sample)
            sample.lost_reason = reason
            sample.visits.append(Visit(self.clock.now(), LOST))

    # ---- the truth (SampleTruth)

    def state(self, sample_id: str) -> ReactionState:
        """The sample's reaction state now, including an anneal still in progress."""
        with self._lock:
            sample = self._known(sample_id)
            if sample.location in self._furnaces:
                return self._annealed(sample, self.clock.now())
            return sample.state

    def phases(self, sample_id: str) -> PhaseState:
        sample = self.get(sample_id)
        return self.truth.phases(self.state(sample_id), sample.batch)

    def optics(self, sample_id: str) -> OpticalProperties:
        sample = self.get(sample_id)
        return self.truth.optics(self.state(sample_id), sample.batch)

    # ---- internals

    def _known(self, sample_id: str) -> Sample:
        try:
            return self._samples[sample_id]
        except KeyError:
            raise MoveRefused("unknown_sample", f"unknown sample {sample_id}") from None

    def _check_destination(self, dest: str, sample_id: str) -> None:
        if not _NAME.match(dest) or dest == LOST:
            raise MoveRefused("bad_name", f"{dest!r} is not a location a sample can be put")
        if (
            self._locations is not None
            and dest not in self._locations
            and dest not in self._furnaces
        ):
            known = sorted(self._locations | set(self._furnaces))
            raise MoveRefused(
                "unknown_location", f"unknown location {dest}; known: {', '.join(known)}"
            )
        if ":" in dest:
            others = [i for i in self.at(dest) if i != sample_id]
            if others:
                raise MoveRefused("occupied", f"{dest} already holds {others[0]}")

    def _check_cool(self, place: str) -> None:
        furnace = self._furnaces.get(place)
        if furnace is None:
            return
        temperature = float(furnace.temperature())
        if temperature > furnace.handling_temperature_c:
            raise MoveRefused(
                "hot",
                f"{place} is at {temperature:.0f} C, above the handling temperature "
                f"{furnace.handling_temperature_c:.0f} C",
            )

    def _annealed(self, sample: Sample, end: float) -> ReactionState:
        times, temps = self._furnaces[sample.location].history.history(sample.since, end)
        return self.truth.anneal(sample.state, sample.batch, times, temps)

    def _leave(self, sample: Sample) -> None:
        if sample.location in self._furnaces:
            sample.state = self._annealed(sample, self.clock.now())


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise MoveRefused(
            "bad_name",
            f"{what} {name!r} is not allowed: use 1-64 letters, digits and '_', '.', ':', '-'",
        )
