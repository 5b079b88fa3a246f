"""Server-sent events: engine events fanned out to every open status page.

`Hub.publish` is called from the engine's EventBus listener (on the deploying
thread); each `/api/v1/events` connection owns a bounded queue and a server
thread that writes what arrives. A slow or vanished browser can never slow a
rollout: when its queue is full the oldest message is dropped (every message
carries whole sections, so the newest one is all a page needs).

Wire format (text/event-stream): `event: update` with a JSON `data` line
holding `{"kind", "deploy_id", "sections": {element id: html}}`, and a comment
line every `keepalive` seconds so proxies keep the connection open.

Topics: the status page subscribes to "" (every rollout); a deploy page to
`deploy_topic(id)`, which only that deploy's updates reach, so the cost of
rendering a deploy page is paid only while one is open. A `last` message ends
its topic's streams after delivery: a finished deploy has nothing more to say.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

_CLOSED = object()


def format_message(event: str, data: Any, event_id: int | None = None) -> bytes:
    """One SSE message; `data` as JSON on a single line (JSON escapes newlines)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def deploy_topic(deploy_id: int) -> str:
    return f"deploy/{deploy_id}"


class Subscription:
    def __init__(self, hub: Hub, size: int, topic: str = "") -> None:
        self._hub = hub
        self.topic = topic
        self._queue: queue.Queue[object] = queue.Queue(maxsize=size)

    def offer(self, item: object) -> None:
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                # Drop the oldest: newer sections supersede it (the end marker is
                # only ever offered last, so it is never what gets dropped).
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()

    def messages(self, keepalive: float) -> Iterator[bytes]:
        """Messages to write, a keep-alive comment when idle; ends when the hub closes."""
        while True:
            try:
                item = self._queue.get(timeout=keepalive)
            except queue.Empty:
                yield b": keep-alive\n\n"
                continue
            if item is _CLOSED:
                return
            assert isinstance(item, bytes)
            yield item

    def close(self) -> None:
        self._hub.unsubscribe(self)


class Hub:
    def __init__(self, queue_size: int = 64) -> None:
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []
        self._size = queue_size
        self._closed = False
        self._next_id = 0

    def subscribe(self, topic: str = "") -> Subscription:
        sub = Subscription(self, self._size, topic)
        with self._lock:
            if self._closed:
                sub.offer(_CLOSED)
            else:
                self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    @property
    def listeners(self) -> int:
        with self._lock:
            return len(self._subs)

    def publish(self, event: str, data: Any | Callable[[], Any], *, topic: str = "",
                last: bool = False) -> None:
        """Send to every subscriber of `topic`; `data` may be a function, called only
        if one listens. `last` ends those streams after this message."""
        with self._lock:
            subs = [s for s in self._subs if s.topic == topic]
            if last:
                # Removed under the lock: a subscriber arriving later reads the
                # final state itself instead of waiting for a message never sent.
                self._subs = [s for s in self._subs if s.topic != topic]
            self._next_id += 1
            event_id = self._next_id
        if not subs:
            return
        payload = format_message(event, data() if callable(data) else data, event_id)
        for sub in subs:
            sub.offer(payload)
            if last:
                sub.offer(_CLOSED)

    def close(self) -> None:
        """End every stream (server shutdown)."""
        with self._lock:
            self._closed = True
            subs, self._subs = self._subs, []
        for sub in subs:
            sub.offer(_CLOSED)
