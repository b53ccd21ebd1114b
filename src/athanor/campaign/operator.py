"""Running a campaign in front of an operator: live display, Ctrl-C to pause, approvals.

SIGTERM (``timeout``, systemd, ``docker stop``) stops the campaign without asking, as the
operator's stop does; a prompt with no answer coming (the input closed) does the same.
"""

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
from athanor.campaign.progress import Progress
from athanor.campaign.proposals import StopCampaign
from athanor.campaign.runner import CampaignRunner, Decision
from athanor.planner.encoding import PlannerError
from athanor.planner.planner import Suggestion


class Operator:
    """Console interaction: the live view, the pause menu and proposal approval."""

    def __init__(self, console: Console, live: bool = True) -> None:
        self.console = console
        self.live: Live | None = (
            Live(console=console, refresh_per_second=4, transient=False) if live else None
        )
        self.runner: CampaignRunner | None = None  # the campaign the signals go to
        self.terminated = False  # a SIGTERM came
        self._asking = False

    @contextmanager
    def signals(self) -> Iterator[None]:
        """Handle SIGINT and SIGTERM for as long as the command runs (main thread only).

        Once :attr:`runner` is set, SIGINT asks it to pause and SIGTERM to stop; a
        repeated signal only repeats the request, so nothing cuts the stop short. Before
        that nothing has moved: SIGINT interrupts and SIGTERM exits, as by default.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handlers = {signal.SIGINT: self._interrupt, signal.SIGTERM: self._terminate}
        previous = {signum: signal.signal(signum, h) for signum, h in handlers.items()}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _interrupt(self, signum: int, _frame: object) -> None:
        if self.runner is None:
            raise KeyboardInterrupt
        self.runner.request_pause()

    def _terminate(self, signum: int, _frame: object) -> None:
        self.terminated = True
        if self.runner is None:
            raise SystemExit(128 + signum)
        self.runner.request_stop("terminated (SIGTERM)")
        if self._asking:  # the prompt would wait for ever
            raise StopCampaign("terminated (SIGTERM)")

    def note(self, text: str) -> None:
        self.console.print(f"[yellow]note:[/] {text}", highlight=False)

    def _ask(self, question: str, **options: Any) -> str:
        """The operator's answer; StopCampaign when none can come (input closed, SIGTERM)."""
        try:
            self._asking = True
            if self.terminated:  # it came just before the prompt
                raise StopCampaign("terminated (SIGTERM)")
            return Prompt.ask(question, console=self.console, **options)
        except EOFError:
            self.console.print()  # end the prompt's line
            raise StopCampaign("no answer (the input is closed)") from None
        finally:
            self._asking = False

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
            answer = self._ask("what now", choices=["resume", "stop", "abort"], default="resume")
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
            answer = self._ask(
                "accept, edit or reject", choices=["accept", "edit", "reject"], default="accept"
            )
            if answer == "reject":
                return None
            if answer == "accept":
                return suggestion.params
            return self._edit(suggestion.params)

    def _edit(self, proposed: dict[str, Any]) -> dict[str, Any]:
        """Ask for each value until the whole proposal is inside the search space."""
        edited = dict(proposed)
        while True:
            for key in proposed:
                edited[key] = self._ask(f"  {key}", default=str(edited[key]))
            try:
                return self._check_edit(edited)
            except PlannerError as exc:
                self.console.print(f"[red]refused:[/] {exc}; edit again", highlight=False)

    def _check_edit(self, edited: dict[str, Any]) -> dict[str, Any]:
        assert self.runner is not None, "proposals come from the runner this operator serves"
        return self.runner.planner.check(edited, "edited proposal")

    def run(self, runner: CampaignRunner, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if self.live is None:
            return work()
        with self.live:
            return work()
