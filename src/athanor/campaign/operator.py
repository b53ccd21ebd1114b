"""Running a campaign in front of an operator: live display, Ctrl-C to pause, approvals."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.prompt import Prompt

from athanor.campaign.display import render
from athanor.campaign.runner import CampaignRunner, Decision, Progress
from athanor.planner.planner import Suggestion


@contextmanager
def pause_on_interrupt(runner: CampaignRunner) -> Iterator[None]:
    """Ctrl-C asks the runner to pause instead of killing the process (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda *_: runner.request_pause())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Operator:
    """Console interaction: the live view, the pause menu and proposal approval."""

    def __init__(self, console: Console, live: bool = True) -> None:
        self.console = console
        self.live: Live | None = (
            Live(console=console, refresh_per_second=4, transient=False) if live else None
        )
        self._last_print = 0.0

    def progress(self, progress: Progress) -> None:
        if self.live is not None:
            self.live.update(render(progress))

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Stop the live view while asking a question."""
        if self.live is not None:
            self.live.stop()
        try:
            yield
        finally:
            if self.live is not None:
                self.live.start()

    def decide(self) -> Decision:
        with self.quiet():
            self.console.print(
                "[bold yellow]Paused.[/] Every furnace is in its safe state. "
                "resume: carry on · stop: end the campaign (resume it later) · "
                "abort: end it now"
            )
            answer = Prompt.ask(
                "what now", choices=["resume", "stop", "abort"], default="resume",
                console=self.console,
            )  # fmt: skip
        return answer  # type: ignore[return-value]

    def approve(self, suggestion: Suggestion) -> dict[str, Any] | None:
        """Accept, edit or reject one proposal."""
        with self.quiet():
            self.console.print(
                f"[bold]Proposal[/] ({suggestion.model}, after {suggestion.n_observations} "
                "results):"
            )
            for key, value in suggestion.params.items():
                self.console.print(f"  {key} = {value}")
            answer = Prompt.ask(
                "accept, edit or reject", choices=["accept", "edit", "reject"],
                default="accept", console=self.console,
            )  # fmt: skip
            if answer == "reject":
                return None
            if answer == "accept":
                return suggestion.params
            edited = dict(suggestion.params)
            for key, value in suggestion.params.items():
                text = Prompt.ask(f"  {key}", default=str(value), console=self.console)
                edited[key] = type(value)(text) if isinstance(value, int | float) else text
            return edited

    def run(self, runner: CampaignRunner, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if self.live is None:
            return work()
        with self.live:
            return work()
