"""The operators' word for one running campaign, given to its runner as ``decide``.

Commands from any number of operators are taken one at a time; each sets what the
operators want (``running``, ``paused``, ``stopped``, ``aborted``), and the runner, once
paused, carries out whatever is wanted when it asks, so concurrent pause and resume
calls end in one state, the last one taken.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from athanor.campaign.runner import CampaignRunner, Decision

Wanted = str  # running, paused, stopped, aborted
#: What the runner does once paused, for each thing the operators may want but a pause.
_DECISIONS: dict[Wanted, Decision] = {"running": "resume", "stopped": "stop", "aborted": "abort"}


class CommandError(Exception):
    """A command the campaign cannot take in the state it is in."""


class Control:
    """Pause, resume, stop and abort of one campaign's runner.

    Parameters
    ----------
    runner
        The campaign's runner (not yet running).
    wanted
        What the operators want at the start: ``running``, or ``paused`` for a campaign
        that was paused when the service stopped (it pauses at once).
    record
        Called with the new ``wanted`` while the command is taken (to store it), so the
        stored word is always the last one taken.
    """

    def __init__(
        self, runner: CampaignRunner, wanted: Wanted, record: Callable[[Wanted], None]
    ) -> None:
        self.runner, self.wanted, self._record = runner, wanted, record
        self._condition = threading.Condition()
        self._asked = False  # an operator's pause the runner has not asked about yet
        self._closing = False
        if wanted == "paused":
            self._asked = True
            runner.request_pause()

    def command(self, what: str) -> Wanted:
        """Take ``pause``, ``resume``, ``stop`` or ``abort``; returns what is wanted now.

        Pausing a paused campaign, or resuming a running one, changes nothing;
        CommandError once it is stopping or aborting.
        """
        target = {"pause": "paused", "resume": "running", "stop": "stopped", "abort": "aborted"}
        with self._condition:
            if self.wanted in ("stopped", "aborted") and target[what] != self.wanted:
                raise CommandError(f"the campaign is being {self.wanted}; it cannot {what}")
            if target[what] == self.wanted:
                return self.wanted
            if self.wanted == "running":  # the runner pauses, then asks what now
                self._asked = True
                self.runner.request_pause()
            self.wanted = target[what]
            self._record(self.wanted)
            self._condition.notify_all()
            return self.wanted

    def decide(self) -> Decision:
        """The runner, paused, asks what now: wait while the operators want it paused.

        A pause the runner made by itself (instrument faults) waits for an operator's
        resume too; a closing service stops it (it resumes when the service starts).
        """
        with self._condition:
            if not self._asked and self.wanted == "running":
                self.wanted = "paused"
                self._record(self.wanted)
            self._asked = False
            while self.wanted == "paused" and not self._closing:
                self._condition.wait()
            if self._closing and self.wanted in ("running", "paused"):
                return "stop"
            return _DECISIONS[self.wanted]

    def close(self) -> None:
        """The service stops: the campaign stops as on 'stop', keeping what is wanted."""
        with self._condition:
            self._closing = True
            self._condition.notify_all()
        self.runner.request_stop("the lab service stopped")
