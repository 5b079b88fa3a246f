"""The garbage-collector pause around live reads: shared by concurrent reads,
restored by the last one, and never turning on a collector someone else disabled."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from backends.kubernetes.live import collector_paused


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_paused_inside_and_restored_after_even_on_error() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("a failed read")
    assert gc.isenabled()


def test_overlapping_reads_share_one_pause() -> None:
    gc.enable()
    inside, release = threading.Event(), threading.Event()

    def other_read() -> None:
        with collector_paused():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=other_read)
    thread.start()
    assert inside.wait(10)
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other read still runs
    release.set()
    thread.join(10)
    assert gc.isenabled()


def test_a_collector_disabled_by_the_application_stays_disabled() -> None:
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()
