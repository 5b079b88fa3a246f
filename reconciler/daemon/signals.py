"""SIGTERM and SIGINT for `reconciler run`, caught from the process's first instant.

The daemon takes a second or so to import its modules and open its history;
a signal in that time used to meet Python's default action and end the process
with status 143 (or a KeyboardInterrupt traceback). `install()` runs before
any heavy import (first thing in `reconciler.cli.main` for `run`) and only
remembers the signal; `on_stop(callback)` is how the daemon, once it exists,
asks to hear about it: at once when a signal already came.

This module imports only the standard library, so installing it costs nothing.

Invariants:
- The first signal never ends the process by itself: it is remembered and,
  once the daemon listens, handed to its callback (which starts a clean stop).
- A second signal ends the process at once with status 1 (the documented
  "stop now"), whether or not the daemon has started listening.
- The handler does no locking and no logging: it may run between any two
  bytecodes of the main thread, including inside the logging module's locks.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

_received: list[int] = []
_callbacks: list[Callable[[int], None]] = []
_on_second: list[Callable[[], None]] = []


def install() -> None:
    """Catch SIGTERM and SIGINT from now on (main thread only; else a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in STOP_SIGNALS:
        signal.signal(signum, _handle)


def received() -> int | None:
    """The first stop signal caught, or None."""
    return _received[0] if _received else None


def on_stop(callback: Callable[[int], None], *, on_second: Callable[[], None]) -> None:
    """Call `callback(signum)` at the first stop signal, from a thread of its own
    (now, when one came already); `on_second()` runs just before a second
    signal ends the process with status 1."""
    install()
    _on_second[:] = [on_second]
    _callbacks[:] = [callback]
    if _received:
        _dispatch(_received[0])


def _handle(signum: int, _frame: FrameType | None) -> None:
    if _received:
        for last_words in _on_second:
            last_words()
        os._exit(1)
    _received.append(signum)
    if _callbacks:
        _dispatch(signum)


def _dispatch(signum: int) -> None:
    # From another thread: the main thread may hold a lock the callback needs
    # (an Event's, in its wait()) when the handler runs on it.
    for callback in list(_callbacks):
        threading.Thread(target=callback, args=(signum,), name="reconciler-signal").start()
