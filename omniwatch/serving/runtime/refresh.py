"""Cache revalidation off the request path: one background thread, one job per key at a time.

The async endpoints answer from caches; when a cache entry is older than its check interval,
they hand the re-check to this thread and keep answering from the entry until it is replaced
(stale-while-revalidate), so no request waits for the registry, the warehouse or a model load.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)


class Refresher:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="omniwatch-refresh")
        self._inflight: set[Hashable] = set()
        self._lock = threading.Lock()

    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in the background unless a job for ``key`` is already queued."""
        with self._lock:
            if key in self._inflight:
                return
            self._inflight.add(key)

        def run() -> None:
            try:
                fn(*args)
            except Exception:  # the next stale read schedules it again; the request path is unaffected
                log.exception("background refresh %s failed", key)
            finally:
                with self._lock:
                    self._inflight.discard(key)

        try:
            self._pool.submit(run)
        except RuntimeError:  # shut down: the app is stopping, the entry simply stays as it is
            with self._lock:
                self._inflight.discard(key)

    def drain(self) -> None:
        """Wait for every job queued so far (tests)."""
        self._pool.submit(lambda: None).result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
