"""The simulation's scheduler port: a heap of (virtual instant, sequence, action), popped in order (ADR 0038).

The Evolution simulator pushes its webhook deliveries, receipts and human replies here instead of sleeping; the
driver pops every action due at the clock's instant, in the order they were pushed.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(order=True)
class Event:
    when: datetime
    seq: int
    label: str = field(compare=False)
    action: Callable[[], None] = field(compare=False, repr=False)


class EventHeap:
    """Thread-safe: the simulator's request handlers push from the server thread while a job waits for them."""

    def __init__(self) -> None:
        self._heap: list[Event] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()

    def push(self, when: datetime, label: str, action: Callable[[], None]) -> None:
        with self._lock:
            heapq.heappush(self._heap, Event(when, next(self._seq), label, action))

    def next_time(self) -> datetime | None:
        with self._lock:
            return self._heap[0].when if self._heap else None

    def pop_due(self, now: datetime) -> Event | None:
        with self._lock:
            if self._heap and self._heap[0].when <= now:
                return heapq.heappop(self._heap)
            return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._heap)
