"""Where experiments come from: the planner, through the operator's approval when asked.

Without approval, proposals come from a thread of their own (:class:`ProposerThread`)
that keeps the next experiment queued while the scheduler goes on, so that a furnace
that frees up starts at once instead of waiting for the planner.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from athanor.campaign.ledger import Ledger
from athanor.campaign.progress import Activity
from athanor.campaign.worker import Event
from athanor.planner.encoding import PlannerError
from athanor.planner.planner import Suggestion
from athanor.store import Experiment

#: An operator's verdict on a proposal: run it, run these edited parameters, or skip it.
Approval = Callable[[Suggestion], dict[str, Any] | None]


class StopCampaign(Exception):
    """No answer will come (the input is closed, a SIGTERM came): ``approve`` and
    ``decide`` raise this, and the campaign stops as on the operator's stop."""


class Proposer:
    """Proposes the next experiment and queues it in the ledger.

    Parameters
    ----------
    ledger
        The campaign's experiments and planner.
    activity
        Told what the campaign waits for (the planner, the operator).
    approve
        When given, each proposal is shown to the operator first; see :data:`Approval`.
    before_asking
        Called just before the operator is asked (to show the proposal's context).
    notify
        Called with notes for the operator (an edit outside the space).
    """

    def __init__(
        self,
        ledger: Ledger,
        activity: Activity,
        *,
        approve: Approval | None = None,
        before_asking: Callable[[], None] = lambda: None,
        notify: Callable[[str], None] = lambda note: None,
    ) -> None:
        self.ledger, self.activity = ledger, activity
        self.approve, self.before_asking, self.notify = approve, before_asking, notify

    def propose(self) -> Experiment | None:
        """Queue the planner's next proposal, once approved when approval is asked for;
        None when the budget is spent or the operator rejected it.

        Raises
        ------
        StopCampaign
            The operator's answer will never come; nothing is stored, so a resumed
            campaign proposes again.
        """
        if self.ledger.budget_left() <= 0:
            return None
        pending = [e.params for e in self.ledger.active()]
        with self.ledger.lock, self.activity.doing("planner fitting the next experiment"):
            suggestion = self.ledger.suggest(pending)
        if self.approve is None:
            return self.ledger.add(suggestion.params, suggestion.to_dict(), "accepted")
        params = self._approved(suggestion)
        if params is None:
            self.ledger.reject(suggestion)
            return None
        decision = "accepted" if params == suggestion.params else "edited"
        return self.ledger.add(params, suggestion.to_dict(), decision)

    def _approved(self, suggestion: Suggestion) -> dict[str, Any] | None:
        assert self.approve is not None
        with self.activity.doing("awaiting the operator's approval of a proposal"):
            self.before_asking()
            params = self.approve(suggestion)
        if params is None or params == suggestion.params:
            return params
        try:  # an edit is held to the same space as every proposal
            return self.ledger.planner.check(params, "edited proposal")
        except PlannerError as exc:
            self.notify(f"rejected: {exc}")
            return None


class ProposerThread:
    """Runs a :class:`Proposer` in a thread: :meth:`ask` wants a proposal whenever
    ``wanted()`` says one is needed; ``wake`` gets an event once it is queued, or the
    planner's error (the scheduler then stops the campaign)."""

    def __init__(
        self, proposer: Proposer, wanted: Callable[[], bool], wake: Callable[[Event], None]
    ) -> None:
        self.proposer, self.wanted, self.wake = proposer, wanted, wake
        self._asked = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proposer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def ask(self) -> None:
        self._asked.set()

    def close(self, timeout: float) -> bool:
        """Stop proposing; whether a proposal in progress finished within ``timeout``."""
        self._closing.set()
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._closing.is_set():
            if not self._asked.wait(0.1):
                continue
            self._asked.clear()
            try:
                with self.proposer.ledger.lock:
                    if self.wanted():
                        self.proposer.propose()
            except Exception as exc:
                self.wake(Event("failed", -1, error=exc))
                return
            self.wake(Event("freed", -1))
