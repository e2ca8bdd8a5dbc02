"""Identifiers: UUIDv7 (RFC 9562) event and call ids, time-ordered and unique.

Python 3.11 has no ``uuid.uuid7``; this is the RFC's method 1: 48-bit Unix
milliseconds, then a 12-bit counter in ``rand_a`` that keeps ids from one
process strictly increasing within a millisecond, then 62 random bits.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0
_POOL_BYTES = 4096  # random bytes fetched per getrandom() call, 8 per id
_pool = b""
_pool_at = 0


def _random_bits_62() -> int:
    """62 bits from the OS CSPRNG, read in 4 KiB blocks (one syscall per 512 ids). Hold _lock."""
    global _pool, _pool_at
    if _pool_at + 8 > len(_pool):
        _pool, _pool_at = os.urandom(_POOL_BYTES), 0
    chunk = _pool[_pool_at : _pool_at + 8]
    _pool_at += 8
    return int.from_bytes(chunk, "big") & ((1 << 62) - 1)


def uuid7() -> uuid.UUID:
    """A new UUIDv7; ids made by one process sort in creation order."""
    return uuid.UUID(int=_uuid7_int())


def _uuid7_int() -> int:
    global _last_ms, _counter
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms = now_ms
            _counter = _random_bits_62() & 0x1FF  # random start, leaving room to count up
        else:
            _counter += 1
            if _counter > 0xFFF:  # more than ~3,500 ids in one ms: borrow the next ms
                _last_ms += 1
                _counter = 0
        ms, counter = _last_ms, _counter
        tail = _random_bits_62()
    return (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | tail


def uuid7_str() -> str:
    """``str(uuid7())`` without building a UUID object (a hot path: one per event)."""
    h = f"{_uuid7_int():032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
