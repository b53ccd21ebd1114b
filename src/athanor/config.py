"""Lab and campaign configuration: YAML files checked by pydantic models.

Every error names the file, the line, the key, the bad value and what is allowed, in one
paragraph (:class:`ConfigError`); unknown keys are errors. Sections that belong to other
parts (an emulator's ``sim`` block, say) are validated by those parts with
:meth:`ConfigSource.validate`, so their errors carry lines too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from athanor.planner.space import Desirability, Objective, OutcomeConstraint, SearchSpace
from athanor.schema import StrictModel

ModelT = TypeVar("ModelT", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message says where and why."""


# --------------------------------------------------------------------------- source map


@dataclass
class ConfigSource:
    """A parsed YAML file that remembers where each value came from."""

    path: Path
    data: Any
    root: yaml.Node | None

    @classmethod
    def read(cls, path: str | Path) -> ConfigSource:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot be read ({exc})") from None
        return cls.parse(text, path)

    @classmethod
    def parse(cls, text: str, path: str | Path = "<string>") -> ConfigSource:
        path = Path(path)
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
            problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
            raise ConfigError(f"{where}: this is not valid YAML: {problem}.") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: this is not valid YAML: {exc}") from None
        return cls(path, data, root)

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """The 1-based line of the value at ``loc`` (or of its deepest existing parent)."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for key in loc:
            child = _child(node, key)
            if child is None:
                break
            node = child
            line = node.start_mark.line + 1
        return line

    def value_at(self, loc: Sequence[str | int]) -> Any:
        value = self.data
        for key in loc:
            try:
                value = value[key]
            except (KeyError, IndexError, TypeError):
                return None
        return value

    def validate(
        self, model: type[ModelT], loc: Sequence[str | int] = (), what: str = ""
    ) -> ModelT:
        """Validate the section at ``loc`` with ``model``; errors name the line and key."""
        data = self.value_at(loc) if loc else self.data
        if data is None:
            data = {}
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(self.explain(exc, tuple(loc), what or model.__name__)) from None

    def explain(self, exc: ValidationError, prefix: tuple[str | int, ...], what: str) -> str:
        parts = []
        for err in exc.errors(include_url=False):
            loc = prefix + tuple(k for k in err["loc"] if not _is_union_tag(k))
            key = ".".join(str(k) for k in loc) or "(top level)"
            line = self.line_of(loc)
            where = f"{self.path}:{line}" if line else str(self.path)
            parts.append(f"{where}: {key}: {_describe(err)}")
        head = f"{what} in {self.path} is not valid ({len(parts)} problem{'s' * (len(parts) > 1)}):"
        return head + "\n  " + "\n  ".join(parts)


def _is_union_tag(key: str | int) -> bool:
    # pydantic puts the chosen union member into the location ('furnace', 'function-after[...]').
    return isinstance(key, str) and ("[" in key or key in _UNION_TAGS)


_UNION_TAGS: set[str] = set()


def _child(node: yaml.Node | None, key: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == str(key):
                return v
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
        return node.value[key]
    return None


def _describe(err: Any) -> str:
    kind, msg, value = err["type"], err["msg"], err.get("input")
    if kind == "extra_forbidden":
        return f"unknown key (value {value!r}); remove it or check its spelling"
    if kind == "missing":
        return "is required but missing"
    if kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        return f"{ctx.get('tag')!r} is not a known kind; allowed: {ctx.get('expected_tags')}"
    msg = msg.removeprefix("Value error, ")
    if isinstance(value, dict):  # a whole section broke a rule that names what it checked
        return msg
    return f"{value!r} is not allowed: {msg}"


def load(path: str | Path, model: type[ModelT], what: str = "") -> ModelT:
    """Read the YAML file at ``path`` and validate it as ``model``."""
    source = ConfigSource.read(path)
    if not isinstance(source.data, dict):
        raise ConfigError(
            f"{source.path}: {what or model.__name__} must be a mapping of keys to values, "
            f"got {type(source.data).__name__}"
        )
    config = source.validate(model, what=what)
    if isinstance(config, SourcedModel):
        config._source = source
    return config


class SourcedModel(StrictModel):
    """A top-level config that keeps its :class:`ConfigSource` for later section checks."""

    _source: ConfigSource | None = None

    @property
    def source(self) -> ConfigSource | None:
        return self._source


# --------------------------------------------------------------------------- lab


_SCHEMES = ("modbus-tcp", "socket", "rfc2217", "tcp", "loop", "pty", "usb", "manual")


def check_connection(url: str) -> str:
    """A connection is a serial device path or a URL with a scheme athanor speaks."""
    if not url or not url.strip():
        raise ValueError("a connection must not be empty")
    if url.startswith("/") or url.upper().startswith("COM"):
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
    wavelength_coefficients: list[float] | None = Field(
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
_UNION_TAGS.update({"furnace", "diffractometer", "spectrometer", "transfer"})


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

    name: str = Field(min_length=1)
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

    def of_kind(self, kind: str) -> dict[str, Any]:
        """The instruments of one kind, by name."""
        return {n: i for n, i in self.instruments.items() if i.kind == kind}

    @property
    def simulated(self) -> bool:
        return self.simulation is not None


def load_lab(path: str | Path) -> LabConfig:
    """Read and check a lab YAML file."""
    return load(path, LabConfig, "lab config")


# --------------------------------------------------------------------------- campaign


class Budget(StrictModel):
    max_experiments: int = Field(gt=0, le=100_000)
    max_lab_hours: float | None = Field(None, gt=0, description="stop after this much lab time")


class Stopping(StrictModel):
    """Stop early when an objective reaches a value or stops improving."""

    objective_reaches: float | None = None
    no_improvement_for: int | None = Field(None, gt=0, description="experiments")


class DerivedOutcome(StrictModel):
    """An outcome computed from measured ones: the product of their desirabilities."""

    product: list[Desirability] = Field(min_length=1)


MeasurementKind = Literal["xrd", "transmission"]


def _default_analysis() -> dict[MeasurementKind, str]:
    return {"xrd": "xrd.wpf", "transmission": "spectra.tauc_auto"}


class CampaignConfig(SourcedModel):
    """A campaign: which lab, which protocol, what to vary, what to optimise, how long."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    lab: str = Field(description="lab config YAML, relative to this file")
    protocol: str = Field(description="plan name, or 'package.module:function'")
    protocol_args: dict[str, Any] = Field(default_factory=dict)
    search_space: SearchSpace
    objectives: list[Objective] = Field(min_length=1)
    outcome_constraints: list[OutcomeConstraint] = Field(default_factory=list)
    outcomes: dict[str, str] = Field(
        default_factory=dict, description="objective or constraint name -> analysis outcome"
    )
    derived: dict[str, DerivedOutcome] = Field(default_factory=dict)
    analysis: dict[MeasurementKind, str] = Field(
        default_factory=_default_analysis,
        description="analysis method per measurement kind",
    )
    on_interrupt: Literal["requeue", "abandon"] = Field(
        "requeue",
        description="what resume does with experiments a crash interrupted: run their "
        "parameters again as a new experiment, or only mark them abandoned",
    )
    initial_experiments: int = Field(8, ge=1, le=10_000)
    warm_start: list[str] = Field(
        default_factory=list,
        description="earlier campaigns (same store) the planner starts from",
    )
    budget: Budget
    stopping: Stopping = Field(default_factory=Stopping)
    seed: int = 0

    @model_validator(mode="after")
    def _consistent(self) -> CampaignConfig:
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError(f"objective names must be unique, got {names}")
        if self.initial_experiments > self.budget.max_experiments:
            raise ValueError(
                f"initial_experiments ({self.initial_experiments}) exceeds "
                f"budget.max_experiments ({self.budget.max_experiments})"
            )
        known = set(names) | {c.name for c in self.outcome_constraints}
        unknown = sorted(set(self.outcomes) - known)
        if unknown:
            raise ValueError(
                f"outcomes maps {', '.join(unknown)}, which are neither objectives nor outcome "
                f"constraints ({', '.join(sorted(known))})"
            )
        return self

    def planner_objectives(self) -> list[Objective]:
        """The objectives as the planner takes them.

        A maximised objective whose outcome is derived (a product of desirabilities)
        becomes composite: the planner models the measured outcomes in the product one
        by one and combines their predictions, instead of modelling the product.
        """
        out = []
        for objective in self.objectives:
            derived = self.derived.get(self.outcomes.get(objective.name, objective.name))
            if derived is not None and objective.goal == "maximize" and not objective.product:
                objective = objective.model_copy(update={"product": derived.product})
            out.append(objective)
        return out

    def lab_path(self) -> Path:
        """The lab config, resolved against the campaign file's folder."""
        base = self.source.path.parent if self.source else Path.cwd()
        return (base / self.lab).resolve()


def load_campaign(path: str | Path) -> CampaignConfig:
    """Read and check a campaign YAML file."""
    return load(path, CampaignConfig, "campaign")
