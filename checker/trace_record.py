"""Recording allocator traces from the live kernel through tracefs, leaving no trace behind.

``record(command, events, output)`` mounts tracefs if it is not mounted, creates a private
tracing *instance* (``instances/mmspec-<pid>-<n>``: its own ring buffer, event switches,
buffer size and ``tracing_on``), records into it while ``command`` runs, writes the
instance's ``trace`` file to ``output`` (gzip or xz when the name ends in ``.gz``/``.xz``),
then removes the instance and unmounts tracefs if it mounted it. The top-level buffer, its
enabled events, buffer size, ``tracing_on`` and contents are never written, so a recording
cannot disturb anybody else's tracing; :func:`global_state` reads them so a caller (and the
tests) can confirm they are unchanged.

All events are switched on while the instance's ``tracing_on`` is 0, the buffer is cleared,
and only then is ``tracing_on`` set: every event is live from the same instant, and
``tracing_on`` goes back to 0 before anything is switched off. Enabling events one by one in
a running buffer makes windows where ``mm_page_alloc`` records but ``mm_page_free`` does not
yet (or no longer), which look exactly like pages allocated twice.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import lzma
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

TRACEFS = "/sys/kernel/tracing"

#: The events ``mmspec trace check`` judges, plus compaction and migration (counted).
DEFAULT_EVENTS: tuple[str, ...] = (
    "kmem:mm_page_alloc", "kmem:mm_page_free", "kmem:mm_page_free_batched",
    "kmem:mm_page_alloc_zone_locked", "kmem:mm_page_pcpu_drain", "kmem:mm_page_alloc_extfrag",
    "compaction:mm_compaction_begin", "compaction:mm_compaction_end",
    "compaction:mm_compaction_isolate_freepages",
    "compaction:mm_compaction_isolate_migratepages",
    "compaction:mm_compaction_migratepages", "migrate:mm_migrate_pages",
)

_counter = itertools.count()

_PY = sys.executable or "python3"

#: Bounded real workloads (each well under 10 s and 100 MiB), for tests and ``mmspec verify``.
WORKLOADS: dict[str, list[str]] = {
    # anonymous memory churn: 1 MiB buffers allocated and dropped, at most 32 MiB at a time
    "python-churn": [_PY, "-c", (
        "import time\n"
        "end = time.monotonic() + 1.0\n"
        "while time.monotonic() < end:\n"
        "    b = [bytearray(1 << 20) for _ in range(32)]\n"
        "    del b\n")],
    # page cache: write 32 MiB to a file, fsync, drop it from the cache, read it back, delete
    "pagecache-io": [_PY, "-c", (
        "import os, tempfile\n"
        "fd, p = tempfile.mkstemp(prefix='mmspec-io-')\n"
        "try:\n"
        "    for _ in range(32): os.write(fd, os.urandom(1 << 20))\n"
        "    os.fsync(fd)\n"
        "    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)\n"
        "    os.lseek(fd, 0, 0)\n"
        "    while os.read(fd, 1 << 20): pass\n"
        "finally:\n"
        "    os.close(fd); os.unlink(p)\n")],
    # THP faults: 64 MiB of MADV_HUGEPAGE anonymous memory touched, then unmapped
    "thp-fault": [_PY, "-c", (
        "import mmap\n"
        "for _ in range(2):\n"
        "    m = mmap.mmap(-1, 64 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)\n"
        "    m.madvise(mmap.MADV_HUGEPAGE)\n"
        "    for i in range(0, 64 << 20, 4096): m[i] = 1\n"
        "    m.close()\n")],
    # a pipe: 64 MiB through cat (GFP_HIGHUSER|__GFP_ACCOUNT pipe pages)
    "pipe": ["sh", "-c", "head -c 67108864 /dev/zero | cat > /dev/null"],
    # compaction of all zones (a one-shot trigger, no setting changes)
    "compaction": ["sh", "-c", "echo 1 > /proc/sys/vm/compact_memory"],
}


class RecordError(Exception):
    """tracefs is unavailable, an event does not exist, or the command could not run."""


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise RecordError(f"cannot write {value.strip()!r} to {path}: {e.strerror}") from None


@contextlib.contextmanager
def tracefs_mounted(path: str = TRACEFS) -> Iterator[str]:
    """tracefs at ``path``; mounted here (and unmounted after) if it was not."""
    if os.path.exists(os.path.join(path, "events")):
        yield path
        return
    if os.geteuid() != 0:
        raise RecordError("tracefs is not mounted and mounting it needs root")
    r = subprocess.run(["mount", "-t", "tracefs", "nodev", path], capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise RecordError(f"cannot mount tracefs on {path}: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", path], capture_output=True)


def global_state(tracefs: str) -> dict[str, str]:
    """The top-level tracing state a recording must not change."""
    return {name: _read(os.path.join(tracefs, name))
            for name in ("set_event", "buffer_size_kb", "tracing_on", "current_tracer",
                         "trace_clock")}


def _event_dir(root: str, event: str) -> str:
    system, sep, name = event.partition(":")
    if not sep or not system or not name or "/" in event:
        raise RecordError(f"event {event!r} is not SYSTEM:NAME (e.g. kmem:mm_page_alloc)")
    path = os.path.join(root, "events", system, name)
    if not os.path.isfile(os.path.join(path, "enable")):
        raise RecordError(f"this kernel has no trace event {event}")
    return path


@contextlib.contextmanager
def _instance(tracefs: str) -> Iterator[str]:
    base = os.path.join(tracefs, "instances")
    if not os.path.isdir(base):
        raise RecordError(f"{base} is missing: this kernel has no tracing instances")
    path = os.path.join(base, f"mmspec-{os.getpid()}-{next(_counter)}")
    try:
        os.mkdir(path)
    except OSError as e:
        raise RecordError(f"cannot create tracing instance {path}: {e.strerror}") from None
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            _write(os.path.join(path, "tracing_on"), "0")
        for attempt in range(50):  # rmdir fails while a reader still holds a file open
            try:
                os.rmdir(path)
                break
            except OSError:
                time.sleep(0.02 * (attempt + 1))


def open_output(path: str, mode: str = "wt") -> IO[Any]:
    """A text file, compressed by its name's suffix (.gz, .xz)."""
    f: IO[Any]
    if path.endswith(".gz"):
        f = gzip.open(path, mode, compresslevel=6)  # type: ignore[assignment]
    elif path.endswith(".xz"):
        f = lzma.open(path, mode, preset=6)
    else:
        f = open(path, mode)  # noqa: SIM115
    return f


def record(command: Sequence[str], output: str | IO[str], events: Sequence[str] = DEFAULT_EVENTS,
           buffer_kb: int = 65536, timeout: float = 60.0,
           tracefs: str = TRACEFS) -> dict[str, Any]:
    """Run ``command`` with ``events`` recorded; write the trace text to ``output``.

    Returns ``{"returncode", "seconds", "timed_out", "bytes", "events": [...]}``. The command
    is killed after ``timeout`` seconds (the trace up to then is kept). Raises
    :class:`RecordError` when tracing is unavailable.
    """
    if not command:
        raise RecordError("no command to run")
    if buffer_kb <= 0:
        raise RecordError("the buffer size must be positive")
    with tracefs_mounted(tracefs) as root, _instance(root) as inst:
        dirs = [_event_dir(inst, e) for e in events]
        _write(os.path.join(inst, "tracing_on"), "0")
        _write(os.path.join(inst, "buffer_size_kb"), str(buffer_kb))
        for d in dirs:
            _write(os.path.join(d, "enable"), "1")
        _write(os.path.join(inst, "trace"), "")
        t0 = time.monotonic()
        _write(os.path.join(inst, "tracing_on"), "1")
        timed_out = False
        try:
            proc = subprocess.Popen(list(command))
        except OSError as e:
            _write(os.path.join(inst, "tracing_on"), "0")
            raise RecordError(f"cannot run {command[0]}: {e.strerror}") from None
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.kill()
            returncode = proc.wait()
        finally:
            _write(os.path.join(inst, "tracing_on"), "0")
        seconds = time.monotonic() - t0
        for d in dirs:
            _write(os.path.join(d, "enable"), "0")
        with open(os.path.join(inst, "trace")) as src:
            if isinstance(output, str):
                with open_output(output) as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                size = Path(output).stat().st_size
            else:
                before = output.tell() if output.seekable() else 0
                shutil.copyfileobj(src, output, 1 << 20)
                size = (output.tell() - before) if output.seekable() else -1
    return {"returncode": returncode, "seconds": round(seconds, 3), "timed_out": timed_out,
            "bytes": size, "events": list(events)}
