"""Leases on shared instruments, in the spirit of AlabOS resource requests.

Each experiment leases the instruments it needs — any free furnace, then any free
diffractometer — for as long as it needs them. Plans wait for a lease as a Bluesky
status (:class:`ResourceGate`), so waiting for a shared instrument is pausable like any
other wait. Requests are granted by priority, then by how long they have waited, and
:meth:`ResourcePool.waiting` says who waits for what (the scheduler's reasons). Every
lease is logged with lab times, which gives utilisation and makespan.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from ophyd.status import Status

from athanor.clock import Clock

_POLL = 0.05  # wall seconds between checks for a cancelled request


class ResourceError(Exception):
    """A request for instruments the lab does not have."""


Want = str | tuple[str, ...]  # a kind, an instrument's name, or the names to choose from


@dataclass(frozen=True)
class Waiting:
    """A request not granted yet: who, for what, since when (lab s), how urgent."""

    holder: str
    want: Want
    since: float
    priority: int = 0


@dataclass
class LeaseRecord:
    resource: str
    holder: str
    start: float  # lab seconds
    end: float | None = None


class ResourcePool:
    """Named instruments grouped by kind; a request takes one free instrument of a kind
    (``"furnace"``) or one named instrument (``"xrd"``) and waits while it is busy.

    Parameters
    ----------
    resources
        ``{kind: [name, ...]}``, e.g. ``{"furnace": ["furnace1", "furnace2"], "xrd": ["xrd"]}``.
    clock
        The lab clock, for the lease log.
    standing
        A holder's standing (e.g. its campaign's priority), added to the priority of
        each of its requests; asked afresh at every grant, so it may change while
        requests wait.

    Each listener :meth:`subscribe` adds is called with an instrument's name each time
    it is given back or put back in service (e.g. to wake the schedulers waiting for a
    free furnace).
    """

    def __init__(
        self,
        resources: Mapping[str, Iterable[str]],
        clock: Clock,
        standing: Callable[[str], int] | None = None,
    ) -> None:
        self.kinds = {kind: list(names) for kind, names in resources.items()}
        self.clock = clock
        self._holder: dict[str, str | None] = {
            name: None for names in self.kinds.values() for name in names
        }
        self._condition = threading.Condition()
        self._waiting: dict[int, Waiting] = {}  # by arrival order
        self._arrivals = 0
        self._releases = 0
        self._released_at: dict[str, int] = {}  # instrument: release count when last freed
        self._out: dict[str, str] = {}  # instrument out of service: why
        self.log: list[LeaseRecord] = []
        self._standing = standing or (lambda holder: 0)
        self._listeners: list[Callable[[str], None]] = []

    def subscribe(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call ``listener(name)`` whenever an instrument frees up; returns the call that
        unsubscribes it."""
        with self._condition:
            self._listeners.append(listener)
        return lambda: self._unsubscribe(listener)

    def _unsubscribe(self, listener: Callable[[str], None]) -> None:
        with self._condition:
            self._listeners.remove(listener)

    def _freed(self, name: str) -> None:
        with self._condition:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(name)

    def _candidates(self, want: Want) -> list[str]:
        if isinstance(want, tuple):
            unknown = [n for n in want if n not in self._holder]
            if unknown or not want:
                raise ResourceError(f"no instrument named {', '.join(unknown) or '(none)'}")
            return list(want)
        if want in self.kinds:
            return self.kinds[want]
        if want in self._holder:
            return [want]
        raise ResourceError(
            f"no instrument or kind named {want!r}; kinds: {', '.join(self.kinds)}; "
            f"instruments: {', '.join(self._holder)}"
        )

    def _first_free(
        self, candidates: list[str], holder: str, priority: int, arrival: int | None = None
    ) -> str | None:
        """A candidate ``holder`` has or may take: free, and wanted by no request that
        comes first (``arrival``: this request's place among the waiting ones).

        Of several free ones, the one idle longest is taken, so work spreads over
        instruments of a kind instead of wearing out the first one listed.
        """
        if held := [name for name in candidates if self._holder[name] == holder]:
            return held[0]
        for name in sorted(candidates, key=lambda n: self._released_at.get(n, -1)):
            if (
                self._holder[name] is None
                and name not in self._out
                and not any(
                    _comes_first(key, self._rank(other), priority, arrival)
                    and name in self._candidates(other.want)
                    for key, other in self._waiting.items()
                    if key != arrival
                )
            ):
                return name
        return None

    def try_acquire(self, want: Want, holder: str, priority: int = 0) -> str | None:
        """Take a free instrument matching ``want`` now (unless a waiting request comes
        first), or return None."""
        candidates = self._candidates(want)
        with self._condition:
            name = self._first_free(candidates, holder, priority + self._standing(holder))
            if name is not None:
                self._grant(name, holder)
            return name

    def acquire(
        self,
        want: Want,
        holder: str,
        timeout: float | None = None,
        cancel: threading.Event | None = None,
        priority: int = 0,
    ) -> str:
        """Wait (wall ``timeout``) until an instrument matching ``want`` is free; take it.

        Waiting requests are served by ``priority`` (higher first), then in arrival order.
        """
        candidates = self._candidates(want)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            arrival = self._arrivals = self._arrivals + 1
            self._waiting[arrival] = Waiting(holder, want, self.clock.now(), priority)
            try:
                while (name := self._free_for(candidates, arrival)) is None:
                    if cancel is not None and cancel.is_set():
                        raise ResourceError(f"request for {want!r} by {holder!r} was cancelled")
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError(f"{want!r} stayed busy for {timeout:g} s")
                    self._condition.wait(_POLL if remaining is None else min(_POLL, remaining))
            finally:
                del self._waiting[arrival]
                self._condition.notify_all()
            self._grant(name, holder)
            return name

    def _rank(self, request: Waiting) -> int:
        """A waiting request's priority with its holder's standing as it is now."""
        return request.priority + self._standing(request.holder)

    def _free_for(self, candidates: list[str], arrival: int) -> str | None:
        request = self._waiting[arrival]
        return self._first_free(candidates, request.holder, self._rank(request), arrival)

    def waiting(self) -> list[Waiting]:
        """The requests not granted yet, in the order they will be served."""
        with self._condition:
            ordered = sorted(self._waiting.items(), key=lambda kv: (-self._rank(kv[1]), kv[0]))
            return [w for _, w in ordered]

    def _grant(self, name: str, holder: str) -> None:
        if self._holder[name] != holder:
            self._holder[name] = holder
            self.log.append(LeaseRecord(name, holder, self.clock.now()))

    def release(self, name: str, holder: str) -> None:
        """Give an instrument back; releasing what one does not hold is a no-op."""
        with self._condition:
            if self._holder.get(name) != holder:
                return
            self._holder[name] = None
            self._releases += 1
            self._released_at[name] = self._releases
            for record in reversed(self.log):
                if record.resource == name and record.end is None:
                    record.end = self.clock.now()
                    break
            self._condition.notify_all()
        self._freed(name)

    def release_all(self, holder: str) -> None:
        for name, current in list(self._holder.items()):
            if current == holder:
                self.release(name, holder)

    @contextmanager
    def lease(self, want: str, holder: str, timeout: float | None = None) -> Iterator[str]:
        name = self.acquire(want, holder, timeout)
        try:
            yield name
        finally:
            self.release(name, holder)

    @contextmanager
    def holding_free(self, names: Iterable[str], holder: str) -> Iterator[list[str]]:
        """Hold, for the block, each of ``names`` that can be taken now; yields those."""
        taken = [name for name in names if self.try_acquire((name,), holder) is not None]
        try:
            yield taken
        finally:
            for name in taken:
                self.release(name, holder)

    @property
    def instruments(self) -> list[str]:
        """Every instrument in the pool, by name."""
        return list(self._holder)

    def holder(self, name: str) -> str | None:
        with self._condition:
            return self._holder[name]

    def free(self, want: Want) -> list[str]:
        """Instruments matching ``want`` in service that nobody holds."""
        with self._condition:
            return [
                n for n in self._candidates(want) if self._holder[n] is None and n not in self._out
            ]

    def take_out(self, name: str, why: str) -> None:
        """Grant ``name`` to nobody until :meth:`put_back` (a holder keeps its lease)."""
        with self._condition:
            self._candidates(name)
            self._out[name] = why

    def put_back(self, name: str) -> None:
        """Return an instrument taken out to service; waiting requests may take it."""
        with self._condition:
            self._out.pop(name, None)
            self._condition.notify_all()
        self._freed(name)

    def out_of_service(self) -> dict[str, str]:
        """Instruments taken out, with why."""
        with self._condition:
            return dict(self._out)

    def busy_time(self, name: str, until: float | None = None) -> float:
        """Lab seconds ``name`` was leased (open leases count up to ``until`` or now)."""
        end_default = self.clock.now() if until is None else until
        return sum(
            (r.end if r.end is not None else end_default) - r.start
            for r in self.log
            if r.resource == name
        )


def _comes_first(key: int, rank: int, priority: int, arrival: int | None) -> bool:
    """Whether a waiting request of priority ``rank`` (arrived ``key``) is served before a
    request of ``priority`` that arrived ``arrival`` (None: one that does not wait, so
    comes last)."""
    if rank != priority:
        return rank > priority
    return arrival is None or key < arrival


class ResourceGate:
    """A movable for plans: ``set(holder)`` finishes once the lease is granted.

    ``yield from bps.mv(gate, "exp-7")`` waits for the instrument as a Bluesky status;
    ``yield from bps.mv(gate, None)`` gives it back.
    """

    def __init__(self, pool: ResourcePool, want: Want, priority: int = 0) -> None:
        self.pool, self.want, self.priority = pool, want, priority
        self.name = f"lease_{want if isinstance(want, str) else '_'.join(want)}"
        self.parent = None
        self.granted: str | None = None
        self._holder: str | None = None
        self._cancel = threading.Event()

    def set(self, holder: str | None) -> Status:
        status = Status(obj=self)
        if holder is None:
            if self.granted is not None and self._holder is not None:
                self.pool.release(self.granted, self._holder)
            self.granted = self._holder = None
            status.set_finished()
            return status
        self._cancel.clear()

        def wait() -> None:
            try:
                self.granted = self.pool.acquire(
                    self.want, holder, cancel=self._cancel, priority=self.priority
                )
                self._holder = holder
                status.set_finished()
            except Exception as exc:
                status.set_exception(exc)

        threading.Thread(target=wait, name=f"{self.name}-{holder}", daemon=True).start()
        return status

    def stop(self, *, success: bool = False) -> None:
        """Stop waiting for the lease (a paused or aborted plan)."""
        self._cancel.set()
