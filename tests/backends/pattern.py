"""The known byte pattern of the large test bodies, shared by the backends and the tests.

Byte i of a body is i % 251. 251 is prime, so a duplicated, dropped or reordered block of any
usual buffer size changes the bytes (and the sha256)."""

import hashlib

PERIOD = 251
_BLOCK = 1 << 20
_BASE = bytes(i % PERIOD for i in range(_BLOCK + PERIOD))


def chunk(offset: int, size: int) -> bytes:
    """Bytes [offset, offset+size) of the pattern; size <= 1 MiB."""
    if size > _BLOCK:
        raise ValueError("chunk too big")
    start = offset % PERIOD
    return _BASE[start:start + size]


def chunks(total: int, size: int = 256 * 1024):
    """Yield the whole pattern body of total bytes in pieces of size bytes."""
    off = 0
    while off < total:
        n = min(size, total - off)
        yield chunk(off, n)
        off += n


def sha256(total: int) -> str:
    h = hashlib.sha256()
    for c in chunks(total, 1 << 20):
        h.update(c)
    return h.hexdigest()
