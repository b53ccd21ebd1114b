"""Read powder patterns: Panalytical ``.xrdml`` (XML) and ``.xy`` / ``.xye`` text files.

Every problem with a file (truncated, not well-formed, missing elements, no data points,
non-numeric values) raises :class:`PatternFileError`, which names the file and what is
wrong. It is a :class:`~athanor.drivers.errors.ProtocolError` (the instrument wrote
something we cannot use) and a :class:`ValueError` (bad input to analysis), so callers
can catch either.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from athanor.drivers.errors import ProtocolError

_SCAN_PATH = "xrdMeasurements/xrdMeasurement/scan/dataPoints"


class PatternFileError(ProtocolError, ValueError):
    """A pattern file that cannot be read; ``path`` and ``problem`` say which and why."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True)
class DiffractionPattern:
    """A measured powder pattern.

    ``counts`` per step, ``counting_time`` seconds per step (None when the file does not
    say), ``sigma`` the third column of an ``.xye`` file, ``metadata`` what else the file
    told (sample id, wavelengths, timestamps, format).
    """

    two_theta: np.ndarray
    counts: np.ndarray
    counting_time: float | None = None
    sigma: np.ndarray | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def read_pattern(path: str | Path) -> DiffractionPattern:
    """Read ``.xrdml``, ``.xy`` or ``.xye`` by the file's suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".xrdml":
        return read_xrdml(path)
    if suffix in (".xy", ".xye"):
        return read_xy(path)
    raise PatternFileError(path, f"unknown pattern format {suffix!r}; use .xrdml, .xy or .xye")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PatternFileError(path, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PatternFileError(path, f"cannot be read ({exc})") from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in element if _local(c.tag) == name), None)


def _number(path: Path, text: str | None, what: str) -> float:
    try:
        value = float((text or "").strip())
    except ValueError:
        raise PatternFileError(path, f"{what} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise PatternFileError(path, f"{what} is not finite: {text!r}")
    return value


def _numbers(path: Path, text: str | None, what: str) -> np.ndarray:
    words = (text or "").split()
    try:
        values = np.array([float(w) for w in words])
    except ValueError:
        bad = next(w for w in words if not _is_float(w))
        raise PatternFileError(
            path, f"<{what}> holds a value that is not a number: {bad!r}"
        ) from None
    if values.size and not np.all(np.isfinite(values)):
        raise PatternFileError(path, f"<{what}> holds values that are not finite")
    return values


def _is_float(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def read_xrdml(path: str | Path) -> DiffractionPattern:
    """Read a Panalytical ``.xrdml`` file (XRDML 1.x and 2.x).

    Takes the first scan's ``dataPoints``: the ``positions axis="2Theta"`` element
    (``startPosition``/``endPosition`` or ``listPositions``), ``counts`` (newer) or
    ``intensities`` (older files), and ``commonCountingTime``.

    Raises
    ------
    PatternFileError
        Truncated or not well-formed XML, missing elements, an empty pattern.
    """
    path = Path(path)
    text = _read_text(path)
    if not text.strip():
        raise PatternFileError(path, "the file is empty")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        line, column = exc.position
        raise PatternFileError(
            path,
            f"not well-formed XML at line {line}, column {column} ({exc.msg}); "
            "the file may be truncated or still being written",
        ) from None
    if _local(root.tag) != "xrdMeasurements":
        raise PatternFileError(path, f"root element is <{_local(root.tag)}>, not <xrdMeasurements>")
    namespace = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    measurement = _child(root, "xrdMeasurement")
    scan = _child(measurement, "scan") if measurement is not None else None
    points = _child(scan, "dataPoints") if scan is not None else None
    if points is None:
        raise PatternFileError(path, f"no {_SCAN_PATH} element")
    two_theta_axis = next(
        (c for c in points if _local(c.tag) == "positions" and c.get("axis") == "2Theta"), None
    )
    if two_theta_axis is None:
        raise PatternFileError(path, f'no <positions axis="2Theta"> in {_SCAN_PATH}')
    intensity = _child(points, "counts")
    kind = "counts"
    if intensity is None:
        intensity, kind = _child(points, "intensities"), "intensities"
    if intensity is None:
        raise PatternFileError(path, f"neither <counts> nor <intensities> in {_SCAN_PATH}")
    counts = _numbers(path, intensity.text, kind)
    if counts.size == 0:
        raise PatternFileError(path, f"<{kind}> holds no data points: the pattern is empty")
    if np.any(counts < 0):
        raise PatternFileError(path, f"<{kind}> holds negative values")
    listed = _child(two_theta_axis, "listPositions")
    if listed is not None:
        two_theta = _numbers(path, listed.text, "listPositions")
        if two_theta.size != counts.size:
            raise PatternFileError(
                path,
                f"{two_theta.size} 2Theta positions but {counts.size} {kind}: "
                "the file may be truncated",
            )
    else:
        start_el = _child(two_theta_axis, "startPosition")
        end_el = _child(two_theta_axis, "endPosition")
        if start_el is None or end_el is None:
            raise PatternFileError(
                path, "2Theta positions have neither startPosition/endPosition nor listPositions"
            )
        start = _number(path, start_el.text, "2Theta startPosition")
        end = _number(path, end_el.text, "2Theta endPosition")
        two_theta = np.linspace(start, end, counts.size)
    time_el = _child(points, "commonCountingTime")
    counting_time = (
        _number(path, time_el.text, "commonCountingTime") if time_el is not None else None
    )
    metadata = {"format": "xrdml", "namespace": namespace, "intensity_element": kind}
    sample = _child(root, "sample")
    sample_id = _child(sample, "id") if sample is not None else None
    if sample_id is not None and sample_id.text:
        metadata["sample_id"] = sample_id.text.strip()
    wavelength = _child(measurement, "usedWavelength") if measurement is not None else None
    for name in ("kAlpha1", "kAlpha2", "ratioKAlpha2KAlpha1"):
        element = _child(wavelength, name) if wavelength is not None else None
        if element is not None and element.text:
            metadata[name] = element.text.strip()
    header = _child(scan, "header")
    for name in ("startTimeStamp", "endTimeStamp"):
        element = _child(header, name) if header is not None else None
        if element is not None and element.text:
            metadata[name] = element.text.strip()
    return DiffractionPattern(two_theta, counts, counting_time, None, metadata)


_COMMENT = ("#", ";", "!", "//")


def read_xy(path: str | Path) -> DiffractionPattern:
    """Read a two- (2θ, I) or three-column (2θ, I, σ) text pattern.

    Blank lines and lines starting with ``#``, ``;``, ``!`` or ``//`` are skipped, and so
    are header lines before the first numeric line. After that every line must hold the
    same number of numbers, with 2θ strictly increasing.

    Raises
    ------
    PatternFileError
        A bad or short line (named by number), no data, 2θ not increasing.
    """
    path = Path(path)
    rows: list[list[float]] = []
    first_line = 0
    for number, raw in enumerate(_read_text(path).splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(_COMMENT):
            continue
        words = line.replace(",", " ").split()
        try:
            values = [float(w) for w in words]
        except ValueError:
            if not rows:
                continue  # a header line
            raise PatternFileError(path, f"line {number} is not numbers: {raw!r}") from None
        if not rows:
            first_line = number
            if len(values) not in (2, 3):
                raise PatternFileError(
                    path, f"line {number} has {len(values)} columns; expected 2 (2θ, I) or 3"
                )
        elif len(values) != len(rows[0]):
            raise PatternFileError(
                path,
                f"line {number} has {len(values)} columns, the data from line {first_line} "
                f"has {len(rows[0])}; the file may be truncated",
            )
        rows.append(values)
    if not rows:
        raise PatternFileError(path, "holds no data points: the pattern is empty")
    data = np.array(rows)
    if not np.all(np.isfinite(data)):
        raise PatternFileError(path, "holds values that are not finite")
    if data.shape[0] > 1 and np.any(np.diff(data[:, 0]) <= 0):
        at = int(np.argmax(np.diff(data[:, 0]) <= 0)) + 1
        raise PatternFileError(path, f"2θ is not strictly increasing at data point {at + 1}")
    sigma = data[:, 2] if data.shape[1] == 3 else None
    fmt = "xye" if sigma is not None else "xy"
    return DiffractionPattern(data[:, 0], data[:, 1], None, sigma, {"format": fmt})
