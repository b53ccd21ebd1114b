"""One experiment in flight: its own RunEngine in its own thread.

A RunEngine runs one plan at a time, and an anneal lasts hours: so each experiment in
flight runs on a RunEngine of its own (workers = furnaces, plus those waiting for a
shared instrument), and shared instruments are leased inside the plans. Every document
goes to the store as it is emitted; the worker reports progress to the scheduler
through a queue and takes pause, resume, stop and abort from it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Literal

from bluesky import RunEngine
from bluesky.utils import Msg, RunEngineInterrupted

from athanor.campaign.collect import Collector
from athanor.protocols.contract import STATE_AT_STAGE, stage_of

Command = Literal["resume", "stop", "abort"]
READY_WAIT = 10.0  # wall seconds a new worker may take to start its RunEngine


class OperatorStop(Exception):
    """The operator stopped or aborted the campaign while this experiment ran."""


@dataclass
class Event:
    """Something the scheduler must hear about an experiment."""

    kind: Literal["state", "paused", "finished", "failed", "freed"]
    experiment_id: int
    state: str = ""
    collector: Collector | None = None
    error: BaseException | None = None
    analysed: Any = None  # what the worker's ``analyse`` returned


class ExperimentWorker(threading.Thread):
    """Runs one experiment's plan on a RunEngine of its own."""

    def __init__(
        self,
        experiment_id: int,
        params: dict[str, Any],
        plan: Callable[[], Generator[Msg, Any, Any]],
        events: queue.Queue[Event],
        subscribers: list[Callable[[str, dict[str, Any]], Any]],
        analyse: Callable[[Collector], Any] = lambda collector: None,
        clean_up: Callable[[], Any] = lambda: None,
    ) -> None:
        super().__init__(name=f"experiment-{experiment_id}", daemon=True)
        self.experiment_id = experiment_id
        self.params = params  # pending, as far as the planner is concerned
        self.plan = plan
        self.events = events
        self.subscribers = subscribers
        self.analyse = analyse  # runs here, off the scheduler's thread
        self.clean_up = clean_up  # after a failure, before it is reported; here too
        self.collector = Collector()
        self.commands: queue.Queue[Command] = queue.Queue()
        self.RE: RunEngine | None = None
        self._ready = threading.Event()

    def _watch(self, name: str, doc: dict[str, Any]) -> None:
        stage = stage_of(doc) if name == "start" else None
        if stage is not None:
            self.events.put(Event("state", self.experiment_id, STATE_AT_STAGE[stage]))

    def run(self) -> None:
        self.RE = RE = RunEngine({}, context_managers=[])
        for subscriber in (*self.subscribers, self.collector, self._watch):
            RE.subscribe(subscriber)
        self._ready.set()
        ended = ""
        try:
            call: Callable[[], Any] = lambda: RE(self.plan())  # noqa: E731
            while True:
                try:
                    call()
                    break
                except RunEngineInterrupted:
                    self.events.put(Event("paused", self.experiment_id))
                    command = self.commands.get()
                    # a stop ends the run as aborted too: RE.stop() would record a success
                    call = RE.resume if command == "resume" else RE.abort
                    if command != "resume":
                        ended = command
            if ended:
                raise OperatorStop(f"the operator chose {ended} while it ran")
            if RE.state != "idle" or self._last_exit() != "success":
                raise RuntimeError(f"the plan ended with exit status {self._last_exit()!r}")
            analysed = self.analyse(self.collector)
            self.events.put(
                Event("finished", self.experiment_id, collector=self.collector, analysed=analysed)
            )
        except BaseException as exc:
            if not isinstance(exc, OperatorStop):  # a stopped campaign clears up on resume
                self.clean_up()
            self.events.put(
                Event("failed", self.experiment_id, error=exc, collector=self.collector)
            )

    def _last_exit(self) -> str | None:
        runs = self.collector.runs
        return runs[-1].exit_status if runs else "success"

    def pause(self) -> None:
        """Ask the plan to pause (devices go to their safe state); RuntimeError if its
        RunEngine has not started within :data:`READY_WAIT` wall seconds."""
        if not self._ready.wait(READY_WAIT) or self.RE is None:
            raise RuntimeError(f"experiment {self.experiment_id}: its RunEngine never started")
        if self.RE.state == "running":
            self.RE.request_pause(defer=False)

    def command(self, what: Command) -> None:
        """What to do after a pause."""
        self.commands.put(what)
