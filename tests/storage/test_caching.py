"""CachingStore: a verified-bytes LRU (cachetools) in front of any store."""

from __future__ import annotations

from pathlib import Path

from fedledger.core.storage import CachingStore, EmbeddedStore


def test_has_answers_from_the_cache_and_from_the_store_behind_it(tmp_path: Path) -> None:
    inner = EmbeddedStore(tmp_path / "inner")
    cached = CachingStore(inner)
    cid = cached.put(b"kept in memory")
    elsewhere = inner.put(b"only in the store behind")
    assert cached.has(cid)  # raised TypeError while the cache was a SizedLRU without __contains__
    assert cached.has(elsewhere)
    assert not cached.has(EmbeddedStore(tmp_path / "other").put(b"nowhere here"))


def test_get_serves_cached_bytes_and_evicts_the_least_recently_used(tmp_path: Path) -> None:
    inner = EmbeddedStore(tmp_path / "inner")
    cached = CachingStore(inner, max_bytes=10)
    a, b = cached.put(b"aaaa"), cached.put(b"bbbb")
    assert cached.get(a) == b"aaaa"  # a is now the most recently used
    c = cached.put(b"cccc")  # 12 bytes > 10: b goes
    with cached._lock:
        assert set(cached._cache) == {a, c}
    assert cached.get(b) == b"bbbb"  # still served, from the store behind


def test_a_value_larger_than_the_cache_is_not_kept(tmp_path: Path) -> None:
    cached = CachingStore(EmbeddedStore(tmp_path / "inner"), max_bytes=3)
    cid = cached.put(b"too large")
    assert cached.get(cid) == b"too large"
    assert len(cached._cache) == 0
