"""The live kernel: THP faults after a fragmenting workload, ``vm.defrag_mode`` 0 against 1.

One run, for one setting of ``/proc/sys/vm/defrag_mode``:

1. a *fragmenter* child maps anonymous memory in 2 MiB-aligned regions with
   ``MADV_NOHUGEPAGE`` and touches it region by region; between regions it reads a slice of a
   temporary file on disk (page cache, movable), creates small files in a temporary directory
   (inodes and dentries: reclaimable slab), and every few regions fills a pipe (unmovable
   pipe pages) and a socket pair (unmovable skb memory), so that the allocations of the four
   kinds interleave in time and compete for the same pageblocks;
2. it then frees every other ``chunk`` of its anonymous memory (``MADV_DONTNEED``), leaving
   holes in the movable pageblocks it filled, and stays alive holding the rest;
3. a *faulting* child maps a 2 MiB-aligned region with ``MADV_HUGEPAGE`` and touches it;
   it reports the region's own ``AnonHugePages`` from ``/proc/self/smaps``.

Measured per run: deltas of ``/proc/vmstat`` (THP faults, compaction, reclaim, allocation
stalls), pageblocks per migratetype from ``/proc/pagetypeinfo`` before and after, and the
``kmem:mm_page_alloc_extfrag`` events of the run in Weiner's categories (a private tracefs
instance, so nobody else's tracing is touched): *claimer* (a whole free block converted,
``fallback_order >= pageblock_order``), *steal* (a partly used block converted,
``change_ownership=1``), *pollute* (a single fallback into another type's block,
``change_ownership=0``), by requested and fallback migratetype (numbers.md §1.2).

``vmstat`` counters are global: THP faults of other ``MADV_HUGEPAGE`` users on the machine
during a run are counted too (with ``enabled=madvise`` they are rare); the smaps figure is
this experiment's alone.

Safety: one experiment at a time (``flock``); ``MemAvailable`` must be at least
:data:`MIN_MEM_AVAILABLE_KB`; the resident total of both children is bounded by the
:class:`Workload` sizes (checked against :data:`MAX_RESIDENT_MIB`); the fragmenter stops
early if ``MemAvailable`` falls below :data:`FLOOR_MEM_AVAILABLE_KB`; every phase has a time
bound and the whole experiment a deadline. ``defrag_mode`` (the only knob written) is saved
first and restored in a ``finally``, also on SIGTERM (turned into KeyboardInterrupt); both
children are killed, the trace instance removed, the temporary directory deleted. The page
cache of the experiment's own file is dropped with ``POSIX_FADV_DONTNEED`` before each run, so
no global ``drop_caches`` is needed.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import math
import os
import re
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import attrs

from checker.live import sigterm_as_interrupt

DEFRAG_MODE = "/proc/sys/vm/defrag_mode"
THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled"
THP_DEFRAG = "/sys/kernel/mm/transparent_hugepage/defrag"
TRACEFS = "/sys/kernel/tracing"
LOCK_PATH = "/run/lock/mmspec-thp-live.lock"

MIN_MEM_AVAILABLE_KB = 12 << 20
FLOOR_MEM_AVAILABLE_KB = 6 << 20
MAX_RESIDENT_MIB = 6 << 10
MAX_TOTAL_S = 300.0

HPAGE = 2 << 20
PAGE = 4096
PAGEBLOCK_ORDER = 9
MADV_DONTNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE = 4, 14, 15
PROT_RW, MAP_PRIVATE_ANON = 0x3, 0x22
MIGRATETYPES = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "Isolate")
#: ``enum migratetype`` values as the tracepoint prints them (include/linux/mmzone.h)
MT_NAME = {0: "unmovable", 1: "movable", 2: "reclaimable", 3: "highatomic"}

VMSTAT = ("thp_fault_alloc", "thp_fault_fallback", "compact_stall", "compact_success",
          "compact_fail", "compact_migrate_scanned", "compact_free_scanned",
          "compact_isolated", "compact_daemon_wake", "pgsteal_kswapd", "pgsteal_direct",
          "pgsteal_anon", "pgsteal_file", "allocstall_dma32", "allocstall_normal",
          "allocstall_movable", "nr_free_pages", "nr_free_pages_blocks")
#: gauges, reported as the value after the run rather than a delta
GAUGES = ("nr_free_pages", "nr_free_pages_blocks")


class ExperimentError(Exception):
    """The experiment cannot run here or did not finish within its bounds."""


@attrs.frozen
class Workload:
    """Sizes of one run (MiB unless named otherwise)."""

    fragment_mib: int = 4096
    file_mib: int = 512
    thp_mib: int = 2048
    chunk_kib: int = 64          # freed every other chunk of the fragmenter's memory
    files_per_region: int = 16   # small files created between 2 MiB regions
    pipe_every: int = 8          # one filled pipe and one socket pair every N regions
    pipe_kib: int = 64

    def resident_mib(self) -> int:
        """Peak resident memory of the experiment (both children plus its page cache)."""
        return max(self.fragment_mib, self.fragment_mib // 2 + self.thp_mib) + self.file_mib

    def check(self) -> None:
        if min(self.fragment_mib, self.file_mib, self.thp_mib) < 2:
            raise ExperimentError("every size must be at least 2 MiB")
        if self.chunk_kib * 1024 % PAGE or (HPAGE // 1024) % self.chunk_kib:
            raise ExperimentError("chunk_kib must be a multiple of 4 dividing 2048")
        if self.resident_mib() > MAX_RESIDENT_MIB:
            raise ExperimentError(f"the workload would hold {self.resident_mib()} MiB, "
                                  f"above the bound of {MAX_RESIDENT_MIB} MiB")


# --- /proc and /sys ---------------------------------------------------------------------------

def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def meminfo(key: str) -> int:
    m = re.search(rf"^{key}:\s+(\d+)", _read("/proc/meminfo"), re.M)
    return int(m.group(1)) if m else 0


def vmstat() -> dict[str, int]:
    out = {}
    for line in _read("/proc/vmstat").splitlines():
        k, _, v = line.partition(" ")
        out[k] = int(v)
    return out


def pageblocks(text: str | None = None) -> dict[str, dict[str, int]]:
    """``/proc/pagetypeinfo``'s block counts summed over zones: {"blocks": {type: n}} plus
    {"mixed": {type: n}} when the kernel prints the mixed-block section (page_owner only)."""
    text = _read("/proc/pagetypeinfo") if text is None else text
    out: dict[str, dict[str, int]] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("Number of blocks type"):
            section = "blocks"
        elif line.startswith("Number of mixed blocks"):
            section = "mixed"
        elif section and line.startswith("Node"):
            counts = [int(x) for x in line.split()[4:]]
            row = out.setdefault(section, dict.fromkeys(MIGRATETYPES, 0))
            for name, n in zip(MIGRATETYPES, counts, strict=False):
                row[name] += n
        elif not line.strip():
            section = ""
    return out


def unavailable() -> str:
    """Why the experiment cannot run here ('' when it can)."""
    for path in (DEFRAG_MODE, "/proc/vmstat", "/proc/pagetypeinfo", THP_ENABLED):
        if not os.path.exists(path):
            return f"{path} is missing"
    if os.geteuid() != 0 or not os.access(DEFRAG_MODE, os.W_OK):
        return f"{DEFRAG_MODE} is not writable (needs root)"
    if "[never]" in _read(THP_ENABLED):
        return "transparent_hugepage/enabled is 'never'"
    avail = meminfo("MemAvailable")
    if avail < MIN_MEM_AVAILABLE_KB:
        return (f"MemAvailable is {avail >> 10} MiB, under the "
                f"{MIN_MEM_AVAILABLE_KB >> 10} MiB this experiment requires")
    return ""


# --- knobs, lock, tracing ---------------------------------------------------------------------

@contextlib.contextmanager
def _exclusive() -> Iterator[None]:
    import fcntl
    path = LOCK_PATH if os.path.isdir(os.path.dirname(LOCK_PATH)) else "/tmp/mmspec-thp-live.lock"
    with open(path, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ExperimentError(f"another THP live experiment holds {path}") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def saved_knobs() -> Iterator[dict[str, str]]:
    """Save defrag_mode (and, to report them, THP enabled/defrag, which are not written);
    restore defrag_mode on the way out, also on error, KeyboardInterrupt or SIGTERM."""
    saved = {"defrag_mode": _read(DEFRAG_MODE).strip(),
             "enabled": _read(THP_ENABLED).strip(), "defrag": _read(THP_DEFRAG).strip()}
    with sigterm_as_interrupt():
        try:
            yield saved
        finally:
            if _read(DEFRAG_MODE).strip() != saved["defrag_mode"]:
                _write(DEFRAG_MODE, saved["defrag_mode"])


class ExtfragTrace:
    """A private tracefs instance with only ``kmem:mm_page_alloc_extfrag`` enabled."""

    def __init__(self, buffer_kib: int = 16384) -> None:
        self.mounted_here = False
        self.dir = ""
        if not os.path.isdir(f"{TRACEFS}/instances"):
            if os.system(f"mount -t tracefs nodev {TRACEFS} 2>/dev/null") != 0:
                return
            self.mounted_here = True
        event = f"{TRACEFS}/events/kmem/mm_page_alloc_extfrag"
        if not os.path.isdir(event):
            return
        self.dir = f"{TRACEFS}/instances/mmspec-thp-live-{os.getpid()}"
        os.mkdir(self.dir)
        _write(f"{self.dir}/buffer_size_kb", str(buffer_kib))

    def start(self) -> None:
        if self.dir:
            _write(f"{self.dir}/trace", "")
            _write(f"{self.dir}/events/kmem/mm_page_alloc_extfrag/enable", "1")

    def stop(self) -> dict[str, Any] | None:
        """Counts since start(): {"claimer": n, "steal": n, "pollute": n, "by": {...},
        "lost": overrun events}; None when tracing is unavailable."""
        if not self.dir:
            return None
        _write(f"{self.dir}/events/kmem/mm_page_alloc_extfrag/enable", "0")
        lost = 0
        for cpu in os.listdir(f"{self.dir}/per_cpu"):
            m = re.search(r"^overrun: (\d+)", _read(f"{self.dir}/per_cpu/{cpu}/stats"), re.M)
            lost += int(m.group(1)) if m else 0
        return classify_extfrag(_read(f"{self.dir}/trace"), lost)

    def close(self) -> None:
        if self.dir:
            with contextlib.suppress(OSError):
                _write(f"{self.dir}/events/kmem/mm_page_alloc_extfrag/enable", "0")
            for _ in range(50):
                try:
                    os.rmdir(self.dir)
                    break
                except OSError:
                    time.sleep(0.1)
        if self.mounted_here:
            os.system(f"umount {TRACEFS} 2>/dev/null")


_EXTFRAG = re.compile(r"fallback_order=(\d+) .*alloc_migratetype=(\d+) "
                      r"fallback_migratetype=(\d+) .*change_ownership=(\d+)")


def classify_extfrag(trace: str, lost: int = 0) -> dict[str, Any]:
    """Weiner's categories (numbers.md §1.2) from ``mm_page_alloc_extfrag`` lines."""
    out: dict[str, Any] = {"claimer": 0, "steal": 0, "pollute": 0, "lost": lost, "by": {}}
    for m in _EXTFRAG.finditer(trace):
        order, alloc, fallback, owned = (int(g) for g in m.groups())
        if order >= PAGEBLOCK_ORDER:
            kind, key = "claimer", f"claimer[{MT_NAME.get(alloc, alloc)}]"
        else:
            kind = "steal" if owned else "pollute"
            key = f"{kind}[{MT_NAME.get(alloc, alloc)} from {MT_NAME.get(fallback, fallback)}]"
        out[kind] += 1
        out["by"][key] = out["by"].get(key, 0) + 1
    return out


# --- the two children -------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def _map_aligned(nbytes: int, advice: int) -> int:
    """An anonymous private mapping of ``nbytes`` starting on a 2 MiB boundary."""
    raw = _libc.mmap(None, nbytes + HPAGE, PROT_RW, MAP_PRIVATE_ANON, -1, 0)
    if raw in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap")
    addr = (raw + HPAGE - 1) & ~(HPAGE - 1)
    if _libc.madvise(addr, nbytes, advice) != 0:
        raise OSError(ctypes.get_errno(), "madvise")
    return addr


def _fragmenter(wl: Workload, path: str, workdir: str, out: int, go: int) -> None:
    """Child 1: interleave the four kinds of allocation, free every other chunk, hold."""
    regions = wl.fragment_mib * (1 << 20) // HPAGE
    addr = _map_aligned(regions * HPAGE, MADV_NOHUGEPAGE)
    fd = os.open(path, os.O_RDONLY)
    slice_bytes = max(PAGE, wl.file_mib * (1 << 20) // regions // PAGE * PAGE)
    held: list[Any] = []
    made = 0
    for r in range(regions):
        if r % 64 == 0 and meminfo("MemAvailable") < FLOOR_MEM_AVAILABLE_KB:
            break
        ctypes.memset(addr + r * HPAGE, 1, HPAGE)
        os.pread(fd, slice_bytes, (r * slice_bytes) % (wl.file_mib << 20))
        for i in range(wl.files_per_region):
            with open(f"{workdir}/f{r}.{i}", "wb"):
                pass
        if r % wl.pipe_every == 0:
            rp, wp = os.pipe()
            os.set_blocking(wp, False)
            with contextlib.suppress(BlockingIOError):
                os.write(wp, b"x" * (wl.pipe_kib << 10))
            a, b = socket.socketpair()
            a.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                a.send(b"y" * (wl.pipe_kib << 10))
            held += [rp, wp, a, b]
        made = r + 1
    os.close(fd)
    chunk = wl.chunk_kib << 10
    for off in range(0, made * HPAGE, 2 * chunk):
        _libc.madvise(addr + off, chunk, MADV_DONTNEED)
    os.write(out, f"{made}\n".encode())
    os.read(go, 1)  # hold everything until the parent has measured


def _faulter(wl: Workload, out: int, go: int) -> None:
    """Child 2: fault THPs in a MADV_HUGEPAGE region and report how long it took."""
    nbytes = wl.thp_mib << 20
    addr = _map_aligned(nbytes, MADV_HUGEPAGE)
    t0 = time.monotonic()
    for off in range(0, nbytes, HPAGE):
        ctypes.memset(addr + off, 1, HPAGE)
    elapsed = time.monotonic() - t0
    # AnonHugePages of this region only: a forked child also maps its parent's THPs, which
    # smaps_rollup would count (a pytest parent once added 4 MiB).
    huge_kb = vma_anon_huge_kb(_read("/proc/self/smaps"), addr)
    os.write(out, f"{elapsed:.3f} {huge_kb}\n".encode())
    os.read(go, 1)


def vma_anon_huge_kb(smaps: str, addr: int) -> int:
    """``AnonHugePages`` of the mapping that contains ``addr``, from /proc/PID/smaps text."""
    inside = False
    for line in smaps.splitlines():
        m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) ", line)
        if m:
            inside = int(m.group(1), 16) <= addr < int(m.group(2), 16)
        elif inside and line.startswith("AnonHugePages:"):
            return int(line.split()[1])
    raise ValueError(f"no mapping at {addr:#x} in smaps")


def _spawn(target: Any, *args: Any) -> tuple[int, int, int]:
    """Fork a child running ``target(*args, out, go)``; return (pid, read end, go write end)."""
    r_out, w_out = os.pipe()
    r_go, w_go = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            os.close(r_out)
            os.close(w_go)
            target(*args, w_out, r_go)
        except BaseException:  # noqa: BLE001 - the parent sees EOF and reports
            code = 1
        os._exit(code)
    os.close(w_out)
    os.close(r_go)
    return pid, r_out, w_go


def _wait_line(fd: int, deadline: float, what: str) -> str:
    buf = b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise ExperimentError(f"{what} did not finish within the time bound")
        got = os.read(fd, 64)
        if not got:
            raise ExperimentError(f"{what} failed (exited early)")
        buf += got
    return buf.decode().strip()


# --- one run, the experiment -----------------------------------------------------------------

def one_run(mode: int, wl: Workload, path: str, workdir: str, trace: ExtfragTrace,
            deadline: float) -> dict[str, Any]:
    """One run under ``defrag_mode=mode`` (the caller saves and restores the knob)."""
    _write(DEFRAG_MODE, str(mode))
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    for name in os.listdir(workdir):
        os.unlink(f"{workdir}/{name}")
    children: list[tuple[int, int, int]] = []
    before, blocks_before = vmstat(), pageblocks()
    trace.start()
    t0 = time.monotonic()
    try:
        children.append(_spawn(_fragmenter, wl, path, workdir))
        regions = int(_wait_line(children[0][1], deadline, "the fragmenter"))
        t_frag = time.monotonic() - t0
        children.append(_spawn(_faulter, wl))
        fault_s_text, huge_text = _wait_line(children[1][1], deadline,
                                             "the THP faulter").split()
        fault_s, anon_huge_kb = float(fault_s_text), int(huge_text)
        after, blocks_after = vmstat(), pageblocks()
        extfrag = trace.stop()
    finally:
        for pid, r_out, w_go in children:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(r_out)
            os.close(w_go)
    row: dict[str, Any] = {"defrag_mode": mode}
    for k in VMSTAT:
        row[k] = after.get(k, 0) if k in GAUGES else after.get(k, 0) - before.get(k, 0)
    row["allocstall"] = sum(row[k] for k in VMSTAT if k.startswith("allocstall_"))
    tries = row["thp_fault_alloc"] + row["thp_fault_fallback"]
    row["thp_success"] = row["thp_fault_alloc"] / tries if tries else math.nan
    row["anon_huge_mib"] = anon_huge_kb >> 10
    row["thp_coverage"] = (anon_huge_kb >> 10) / wl.thp_mib
    row["fault_s"] = fault_s
    row["fragment_s"] = round(t_frag, 3)
    row["fragment_regions"] = regions
    row["pageblocks_before"] = blocks_before["blocks"]
    row["pageblocks_after"] = blocks_after["blocks"]
    if "mixed" in blocks_after:
        row["mixed_before"], row["mixed_after"] = blocks_before["mixed"], blocks_after["mixed"]
    if extfrag is not None:
        row.update(claimer=extfrag["claimer"], steal=extfrag["steal"],
                   pollute=extfrag["pollute"], extfrag=extfrag["by"],
                   extfrag_lost=extfrag["lost"])
    return row


SUMMARY = ("thp_fault_alloc", "thp_fault_fallback", "thp_success", "anon_huge_mib",
           "fault_s", "compact_stall", "compact_success", "compact_fail",
           "compact_migrate_scanned", "compact_free_scanned", "pgsteal_kswapd",
           "pgsteal_direct", "allocstall", "claimer", "steal", "pollute")


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per defrag_mode setting and counter: mean, min and max over the runs."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for mode in sorted({r["defrag_mode"] for r in runs}):
        rows = [r for r in runs if r["defrag_mode"] == mode]
        stats = {}
        for k in SUMMARY:
            vals = [float(r[k]) for r in rows if k in r and not math.isnan(float(r[k]))]
            if vals:
                stats[k] = {"mean": sum(vals) / len(vals), "min": min(vals), "max": max(vals)}
        out[str(mode)] = stats
    return out


def experiment(wl: Workload | None = None, runs_per_mode: int = 3,
               max_total_s: float = MAX_TOTAL_S, progress: Any = None) -> dict[str, Any]:
    """Alternate defrag_mode 0,1,0,1,... ``runs_per_mode`` times each; return
    {"runs": [...], "summary": {...}, "restored": {...}, "workload": {...}, "machine": {...}}."""
    wl = wl or Workload()
    wl.check()
    why = unavailable()
    if why:
        raise ExperimentError(why)
    deadline = time.monotonic() + max_total_s
    machine = {"kernel": os.uname().release, "mem_available_kib": meminfo("MemAvailable"),
               "nr_free_pages_start": vmstat().get("nr_free_pages", 0)}
    runs: list[dict[str, Any]] = []
    with _exclusive(), saved_knobs() as saved:
        workdir = tempfile.mkdtemp(prefix="mmspec-thp-live-", dir="/var/tmp")
        trace: ExtfragTrace | None = None
        try:
            if os.statvfs(workdir).f_bavail * os.statvfs(workdir).f_frsize < 4 * (
                    wl.file_mib << 20):
                raise ExperimentError(f"not enough disk space in {workdir}")
            path = f"{workdir}/pagecache.bin"
            with open(path, "wb") as f:
                block = os.urandom(1 << 20)
                for _ in range(wl.file_mib):
                    f.write(block)
                f.flush()
                os.fsync(f.fileno())
            files = f"{workdir}/files"
            os.mkdir(files)
            trace = ExtfragTrace()
            for i in range(2 * runs_per_mode):
                if progress:
                    progress(i, 2 * runs_per_mode)
                runs.append(one_run(i % 2, wl, path, files, trace, deadline))
                runs[-1]["run"] = i + 1
        finally:
            if trace is not None:
                trace.close()
            shutil.rmtree(workdir, ignore_errors=True)
    restored = {"defrag_mode": _read(DEFRAG_MODE).strip(), "enabled": _read(THP_ENABLED).strip(),
                "defrag": _read(THP_DEFRAG).strip()}
    return {"workload": attrs.asdict(wl), "machine": machine, "saved": saved,
            "restored": restored, "runs": runs, "summary": summarise(runs)}


# --- command line ----------------------------------------------------------------------------

TABLE = ("run", "defrag_mode", "thp_fault_alloc", "thp_fault_fallback", "anon_huge_mib",
         "fault_s", "compact_stall", "compact_success", "compact_fail",
         "compact_migrate_scanned", "compact_free_scanned", "pgsteal_kswapd",
         "pgsteal_direct", "allocstall", "claimer", "steal", "pollute")


def format_table(report: dict[str, Any]) -> str:
    head = [k.replace("compact_", "c_").replace("thp_fault_", "thp_") for k in TABLE]
    lines = [" ".join(f"{h:>12}" for h in head)]
    for r in report["runs"]:
        lines.append(" ".join(f"{r.get(k, '-'):>12}" for k in TABLE))
    lines.append("")
    lines.append("mean [min..max] per defrag_mode:")
    for mode, stats in report["summary"].items():
        cells = [f"{k}={s['mean']:.4g} [{s['min']:.4g}..{s['max']:.4g}]"
                 for k, s in stats.items()]
        lines.append(f"  defrag_mode={mode}: " + ", ".join(cells))
    lines.append("pageblocks (all zones) before the first and after the last run: "
                 f"{report['runs'][0]['pageblocks_before']} -> "
                 f"{report['runs'][-1]['pageblocks_after']}")
    lines.append(f"restored: {report['restored']} (saved: {report['saved']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m checker.thp_live", description=__doc__.split(
        "\n")[0])
    p.add_argument("--runs", type=int, default=3, help="runs per defrag_mode setting")
    d = Workload()
    p.add_argument("--fragment-mib", type=int, default=d.fragment_mib)
    p.add_argument("--file-mib", type=int, default=d.file_mib)
    p.add_argument("--thp-mib", type=int, default=d.thp_mib)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    if a.runs < 1:
        print("error: --runs must be at least 1", file=sys.stderr)
        return 2
    wl = Workload(fragment_mib=a.fragment_mib, file_mib=a.file_mib, thp_mib=a.thp_mib)

    def progress(i: int, n: int) -> None:
        if sys.stderr.isatty():
            print(f"run {i + 1}/{n} (defrag_mode={i % 2})", file=sys.stderr)

    try:
        report = experiment(wl, a.runs, progress=progress)
    except ExperimentError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; defrag_mode restored", file=sys.stderr)
        return 130
    print(json.dumps(report) if a.json else format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
