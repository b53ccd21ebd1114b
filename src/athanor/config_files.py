"""Reading YAML configuration files with errors that say where.

Every error names the file, the line, the key, the bad value and what is allowed, in one
paragraph (:class:`ConfigError`); unknown keys are errors. Sections that belong to other
parts (an emulator's ``sim`` block, say) are validated by those parts with
:meth:`ConfigSource.validate`, so their errors carry lines too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

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
        _refuse_repeated_keys(root, path)
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

    def error(self, loc: Sequence[str | int], message: str) -> ConfigError:
        """A :class:`ConfigError` for the value at ``loc``: file, line, key, then ``message``."""
        return ConfigError(located(self, loc, message))

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


def _refuse_repeated_keys(node: yaml.Node | None, path: Path, loc: str = "") -> None:
    """A key given twice in one mapping is an error naming both lines (YAML would keep the
    last one silently)."""
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            line = key.start_mark.line + 1
            if name in first:
                where = f"{loc}.{name}" if loc else name
                raise ConfigError(
                    f"{path}:{line}: {where}: the key is given twice, on lines {first[name]} "
                    f"and {line}; keep one of them"
                )
            first[name] = line
            _refuse_repeated_keys(value, path, f"{loc}.{name}" if loc else name)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_repeated_keys(item, path, f"{loc}[{i}]")


def located(source: ConfigSource | None, loc: Sequence[str | int], message: str) -> str:
    """``FILE:LINE: KEY: message``; without a source (a config kept in a store) just
    ``KEY: message``."""
    key = ".".join(str(k) for k in loc) or "(top level)"
    if source is None:
        return f"{key}: {message}"
    line = source.line_of(loc)
    return f"{source.path}:{line}: {key}: {message}" if line else f"{source.path}: {key}: {message}"


def _is_union_tag(key: str | int) -> bool:
    # pydantic puts the chosen union member into the location ('furnace', 'function-after[...]').
    return isinstance(key, str) and ("[" in key or key in UNION_TAGS)


UNION_TAGS: set[str] = set()


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
        return f"unknown key (value {shorten(value)}); remove it or check its spelling"
    if kind == "missing":
        return "is required but missing"
    if kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        return f"{ctx.get('tag')!r} is not a known kind; allowed: {ctx.get('expected_tags')}"
    msg = msg.removeprefix("Value error, ")
    if isinstance(value, dict):  # a whole section broke a rule that names what it checked
        return msg
    return f"{shorten(value)} is not allowed: {msg}"


def shorten(value: Any, width: int = 60) -> str:
    """``repr(value)``, cut to about ``width`` characters for a message."""
    text = repr(value)
    return text if len(text) <= width else f"{text[: width - 12]}... ({len(text)} characters)"


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
