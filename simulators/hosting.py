"""Hosting emulators: an asyncio loop in a background thread, and pseudo-terminal links.

Every emulator is an :class:`Emulator`: ``await start()`` opens its real server (TCP port,
serial line) and returns the connection a client uses; ``await stop()`` closes it. A
:class:`BackgroundLoop` runs them off the caller's thread, so plain blocking code (tests,
drivers, the RunEngine) can talk to them over the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import tty
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Emulator(Protocol):
    name: str

    async def start(self) -> str:
        """Open the server; return the connection URL or device path clients use."""
        ...

    async def stop(self) -> None:
        """Close the server and every connection."""
        ...


class BackgroundLoop:
    """An asyncio event loop running in a daemon thread.

    Use as a context manager; :meth:`call` runs a coroutine there and waits for it.
    """

    def __init__(self, name: str = "athanor-sim") -> None:
        self.loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._started.wait()
        self._emulators: list[Emulator] = []

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._started.set)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        """Run ``coro`` on the loop and return its result (wall-second ``timeout``)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, emulator: Emulator) -> str:
        """Start an emulator on the loop; it is stopped by :meth:`close`."""
        url = self.call(emulator.start())
        self._emulators.append(emulator)
        return url

    def close(self) -> None:
        """Stop every emulator started here, then the loop."""
        if not self.loop.is_running():
            return
        for emulator in reversed(self._emulators):
            with contextlib.suppress(Exception):
                self.call(emulator.stop(), timeout=10)
        self._emulators.clear()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    def __enter__(self) -> BackgroundLoop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PtyLink:
    """A pseudo-terminal pair: the emulator keeps the master, a client opens ``path``.

    Bytes written by the client arrive on :meth:`read`; :meth:`write` sends to the client.
    The line is raw (no echo, no line editing), as a serial port is.
    """

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tty.setraw(self.master)
        self.path = os.ttyname(self._slave)
        os.set_blocking(self.master, False)
        self._queue: asyncio.Queue[bytes] | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start delivering the client's bytes to :meth:`read` on ``loop``."""
        self._queue = asyncio.Queue()
        loop.add_reader(self.master, self._on_readable)

    def _on_readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # the client side went away
            data = b""
        if data and self._queue is not None:
            self._queue.put_nowait(data)

    async def read(self) -> bytes:
        """The next chunk of bytes the client sent (waits for one)."""
        assert self._queue is not None, "attach() first"
        return await self._queue.get()

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = os.write(self.master, view)
            except BlockingIOError:
                continue
            view = view[sent:]

    def close(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if loop is not None:
            loop.remove_reader(self.master)
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def count_down(counts: dict[str, int], key: str) -> bool:
    """Take one from ``counts[key]`` if any is left (a fault switch that fires N times)."""
    if counts.get(key, 0) > 0:
        counts[key] -= 1
        return True
    return False
