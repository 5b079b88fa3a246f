"""Cut off a connection whose server took a request and then does not answer.

Why: keepalives and `tcp_user_timeout` only notice a peer whose kernel is
gone. A server whose processes are frozen (SIGSTOP, a hung disk, a VM paused
on the host) still has its kernel acknowledge every byte, so a driver that
sent a query waits for the answer for good, and so does the thread that
called it (a deploy, the shard heartbeat). Nothing on the server can end that
wait (a frozen server enforces no `statement_timeout`): the client must.

How: a request (one statement, a commit, a connection check) runs inside
`Watch.request()`. One thread per `Watchdog` sleeps until the earliest
deadline of the requests in flight. A request still running `limit` seconds
after it was sent is cut, in a thread of its own (so a slow cut does not
delay the others): first it asks the server to cancel it (`cancel`, which
opens a new connection, so it gets `margin` seconds), and when the request has
still not ended `margin` seconds after its deadline, the connection's socket
is shut down, which makes the blocked read return at once with an error.

Invariants:
- A request ends, answered or failed, at most about `limit + margin` seconds
  after it was sent (plus the time its thread needs to notice the shut socket).
- Nothing is done to a connection after its `detach()`: `detach` waits for a
  cut in flight, so a connection handed back to its pool is never cancelled or
  shut by a late cut.
- The socket is shut through a duplicate of its descriptor taken at `attach()`,
  so a descriptor that the driver closed (a lost connection) and the process
  gave to another socket is never touched.
- A connection that was cut is reported by `detach()` (and `Watch.fired`): its
  owner discards it, because it may be cancelled, shut, or mid-answer.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

Cancel = Callable[[float], None]
"""Ask the server to cancel what the connection runs, waiting at most that long."""


class Watchdog:
    def __init__(self, *, limit: float, margin: float, name: str) -> None:
        self.limit, self.margin, self._name = limit, margin, name
        self._due: list[tuple[float, int, Watch, int]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self) -> Watch:
        """A watch for one caller's connections, one at a time."""
        return Watch(self)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._due.clear()
            self._changed.notify()

    def _arm(self, watch: Watch, serial: int) -> None:
        entry = (time.monotonic() + self.limit, next(self._order), watch, serial)
        with self._changed:
            if self._closed:
                return
            heapq.heappush(self._due, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name,
                                                daemon=True)
                self._thread.start()
            elif self._due[0] is entry:
                self._changed.notify()  # sooner than what the thread sleeps for

    def _run(self) -> None:
        with self._changed:
            while not self._closed:
                # Ended requests stay in the heap until due: dropping them when
                # they end would cost a search per request, for no gain.
                if not self._due:
                    self._changed.wait()
                    continue
                deadline, _, watch, serial = self._due[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._changed.wait(wait)
                    continue
                heapq.heappop(self._due)
                if watch._running(serial):
                    threading.Thread(target=watch._cut, args=(serial, deadline),
                                     name=f"{self._name}-cut", daemon=True).start()


class Watch:
    """Watches the requests of one connection at a time (`attach` .. `detach`)."""

    def __init__(self, dog: Watchdog) -> None:
        self._dog = dog
        self._state = threading.Condition()
        self._serial = 0
        self._armed = False
        self._cancel: Cancel | None = None
        self._socket: socket.socket | None = None
        self._cut_this = False
        self.fired = False
        """Whether a request of any connection this watch held was cut."""

    def attach(self, fileno: int, cancel: Cancel) -> None:
        duplicate = socket.socket(fileno=os.dup(fileno))
        with self._state:
            self._socket, self._cancel, self._cut_this = duplicate, cancel, False

    def detach(self) -> bool:
        """Stop watching the connection (after a cut in flight is done); whether
        one of its requests was cut."""
        with self._state:
            self._serial += 1
            self._armed = False
            duplicate, self._socket, self._cancel = self._socket, None, None
            cut = self._cut_this
        if duplicate is not None:
            duplicate.close()
        return cut

    @contextmanager
    def request(self) -> Iterator[None]:
        with self._state:
            self._serial += 1
            self._armed = True
            serial = self._serial
        self._dog._arm(self, serial)
        try:
            yield
        finally:
            with self._state:
                if self._serial == serial:
                    self._armed = False
                self._state.notify_all()

    def _running(self, serial: int) -> bool:
        # Without the lock: a cut in flight holds it for up to `margin`, and the
        # watchdog (and every `_arm`) must not wait for that. A stale answer only
        # starts a cut that finds nothing to do; `_cut` decides under the lock.
        return self._armed and self._serial == serial

    def _cut(self, serial: int, deadline: float) -> None:
        with self._state:
            if not (self._armed and self._serial == serial) or self._cancel is None:
                return
            self.fired = self._cut_this = True
            # A server that is slow but alive ends the request itself, and keeps
            # no lock or work of it; a frozen one cannot even take the cancel.
            with suppress(Exception):
                self._cancel(self._dog.margin)
            ended = self._state.wait_for(
                lambda: not (self._armed and self._serial == serial),
                timeout=max(0.0, deadline + self._dog.margin - time.monotonic()))
            if not ended and self._socket is not None:
                with suppress(OSError):
                    self._socket.shutdown(socket.SHUT_RDWR)
