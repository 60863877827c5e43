"""Helpers for experiments on the live kernel that change its knobs."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block, SIGTERM raises KeyboardInterrupt, so the ``finally`` that restores
    the kernel's knobs runs when the experiment is killed too. (Outside the main thread
    signals cannot be caught; the block then runs unchanged.)"""
    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
