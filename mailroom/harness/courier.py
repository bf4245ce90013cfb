"""A one-thread delivery van: jobs run in the background at the time they are due, in due order.

The relay hands over what it accepted and answers 250 at once, as a real relay queues mail; the DWP
simulator's responses go out seconds later. A failing job is reported through `on_error` and never stops
the van. `wait_idle` lets a demo or a test wait until everything scheduled so far has been delivered.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Job = Callable[[], None]


@dataclass(order=True)
class _Entry:
    due: float
    order: int
    job: Job = field(compare=False)


class Courier:
    def __init__(self, on_error: Callable[[BaseException], None]) -> None:
        self._on_error = on_error
        self._queue: list[_Entry] = []
        self._order = itertools.count()
        self._busy = 0  # jobs scheduled and not yet finished
        self._stopped = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="harness-courier", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop after the job in hand; jobs not yet due are dropped."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def schedule(self, delay: float, job: Job) -> None:
        with self._changed:
            heapq.heappush(self._queue, _Entry(time.monotonic() + delay, next(self._order), job))
            self._busy += 1
            self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """True once every job scheduled so far (and any they scheduled) has run; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._busy == 0, timeout=timeout)

    def _run(self) -> None:
        while True:
            with self._changed:
                entry = self._next_due()
                if entry is None:
                    return
            try:
                entry.job()
            except Exception as exc:  # one failed delivery must not stop the others
                self._on_error(exc)
            with self._changed:
                self._busy -= 1
                self._changed.notify_all()

    def _next_due(self) -> _Entry | None:
        """Wait (holding the condition) until a job is due or the van stops."""
        while not self._stopped:
            if self._queue and self._queue[0].due <= time.monotonic():
                return heapq.heappop(self._queue)
            wait = self._queue[0].due - time.monotonic() if self._queue else None
            self._changed.wait(timeout=wait)
        return None
