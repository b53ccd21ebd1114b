"""Turning what went wrong in a plan into one line an operator can act on."""

from __future__ import annotations

from bluesky.utils import FailedStatus


def explain(error: BaseException | None) -> str:
    """The root cause of a failed plan: a device's own error rather than 'FailedStatus'."""
    while isinstance(error, FailedStatus) and error.__cause__ is not None:
        error = error.__cause__
    if error is None:
        return "unknown error"
    return f"{type(error).__name__}: {error}"
