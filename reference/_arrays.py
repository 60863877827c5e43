"""Flat per-page and per-pageblock arrays for :mod:`reference.page_alloc`.

The arrays are ``librt.vecs`` vectors (``vec[i32]`` for the free-list links, ``vec[u8]`` for
state, order and migratetype bytes): packed like ``array.array`` and ``bytearray`` (4 and 1
bytes an entry, so a zone of 16 Mi pages stays far below 1 GiB), indexable and assignable from
any Python code, and read and written in place by mypyc-compiled code without boxing. Where
``librt`` is missing (it is a dependency on CPython; the pure-Python path does not need it)
they are ``array.array('i')`` and ``bytearray``, with the same indexing.

This module is never compiled: it only builds the arrays, and building them from a buffer
here is a single copy.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from librt.vecs import vec
    from mypy_extensions import i32, u8

try:
    from librt.vecs import vec as _vec
    from mypy_extensions import i32 as _i32
    from mypy_extensions import u8 as _u8
except ImportError:  # pragma: no cover - the fallback is exercised on platforms without librt
    HAVE_VECS = False
else:
    HAVE_VECS = True

#: The largest size of an i32 array: free-list links are page offsets and sentinel numbers.
I32_LIMIT = 1 << 31


def i32_array(size: int) -> vec[i32]:
    """``size`` zeros, 32-bit signed."""
    if size >= I32_LIMIT:
        raise ValueError(f"{size} entries do not fit 32-bit free-list links")
    zeros = array("i", [0]) * size
    if HAVE_VECS:
        return _vec[_i32](zeros)  # type: ignore[no-any-return]
    return zeros  # type: ignore[return-value]


def u8_array(items: int | Iterable[int]) -> vec[u8]:
    """``items`` zeros, or the given bytes."""
    data = bytearray(items)
    if HAVE_VECS:
        return _vec[_u8](data)  # type: ignore[no-any-return]
    return data  # type: ignore[return-value]
