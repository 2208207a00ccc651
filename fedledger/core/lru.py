"""A thread-safe least-recently-used map bounded by the total size of its values (bytes)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class SizedLRU:
    """Keeps at most `max_bytes` of values; the least recently used go first."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self._size = max_bytes, 0
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            self._items.move_to_end(key)
            return hit[0]

    def put(self, key: Hashable, value: Any, size: int) -> None:
        with self._lock:
            if key in self._items or size > self.max_bytes:
                return
            self._items[key] = (value, size)
            self._size += size
            while self._size > self.max_bytes:
                _, (_, old) = self._items.popitem(last=False)
                self._size -= old
