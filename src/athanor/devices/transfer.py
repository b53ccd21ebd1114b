"""Sample handling as an ophyd device: ``set(Move(...))`` moves a sample, ``set(Prepare(...))``
weighs one out."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from ophyd import Component as Cpt
from ophyd import Device, Kind
from ophyd.status import Status

from athanor.clock import Clock
from athanor.devices.signals import ValueSignal
from athanor.drivers.errors import InstrumentFault

#: Times a move is tried again after a latched fault that the robot's reset cleared.
MOVE_RETRIES = 2


@dataclass(frozen=True)
class Prepare:
    """Weigh out and press a new sample from a recipe (precursor ratio, dopant ...)."""

    sample_id: str
    recipe: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Move:
    """Carry a sample from one location to another (``"rack"``, ``"furnace1"``, ``"xrd"``)."""

    sample_id: str
    source: str
    target: str


class SampleTransfer(Device):
    """The sample handler: a robot, or an operator asked to do the move.

    Moves are safe to repeat: moving a sample to where it already is succeeds at once.
    A move that ends in a latched fault (a gripper fault, which leaves the sample where
    it was) is reset and tried again, :data:`MOVE_RETRIES` times at most.

    Parameters
    ----------
    driver
        A transfer driver (:class:`athanor.drivers.transfer.TransferRobot` or
        :class:`athanor.drivers.transfer.ManualTransfer`).
    clock
        Lab clock for move timeouts.
    move_timeout
        Lab seconds a move may take before it is a fault.
    """

    #: Subscription run after each completed Move, with ``sample_id``, ``source``, ``target``.
    SUB_MOVED = "moved"

    sample_id = Cpt(ValueSignal, value="", kind=Kind.normal)
    location = Cpt(ValueSignal, value="", kind=Kind.hinted)
    move_timeout = Cpt(ValueSignal, value=600.0, units="s", kind=Kind.config)

    def __init__(self, driver: Any, clock: Clock, *, name: str, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.driver, self.clock = driver, clock
        self._one_at_a_time = threading.Lock()  # one arm, shared by every experiment

    def set(self, request: Move | Prepare) -> Status:
        if not isinstance(request, Move | Prepare):
            raise TypeError(f"{self.name}: set() takes a Move or a Prepare, got {request!r}")
        status = Status(obj=self, timeout=None)

        def work() -> None:
            try:
                with self._one_at_a_time:
                    where = self._do(request)
                self.sample_id.put(request.sample_id)
                self.location.put(where)
                if isinstance(request, Move):
                    self._run_subs(
                        sub_type=self.SUB_MOVED, sample_id=request.sample_id,
                        source=request.source, target=request.target,
                    )  # fmt: skip
                status.set_finished()
            except Exception as exc:
                status.set_exception(exc)

        threading.Thread(target=work, name=f"{self.name}-move", daemon=True).start()
        return status

    def where(self, sample_id: str) -> str | None:
        """Where the handler last put ``sample_id`` (None: it does not know the sample)."""
        try:
            return str(self.driver.where(sample_id))
        except InstrumentFault:
            return None

    def recover(self) -> str:
        """Clear a latched fault (a gripper fault) so that moves are taken again; returns
        the fault that was cleared, or ""."""
        fault = self.driver.status().fault
        if fault:
            self.driver.reset()
        return fault

    def _do(self, request: Move | Prepare) -> str:
        if isinstance(request, Prepare):
            self.driver.prepare(request.sample_id, request.recipe)
            return str(self.driver.where(request.sample_id))
        retries = 0
        while True:
            try:
                self.driver.move(
                    request.sample_id, request.source, request.target,
                    timeout_lab_s=float(self.move_timeout.get()), clock=self.clock,
                )  # fmt: skip
                return request.target
            except InstrumentFault:
                # A latched fault (gripper) leaves the sample where it was: reset, again.
                retries += 1
                if retries > MOVE_RETRIES or not self.recover():
                    raise
