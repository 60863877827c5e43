"""``mmspec ksm estimate --pid PID``: what KSM and SKSM would save for a running process.

The process's private mappings are read through ``/proc/PID/maps``, ``/proc/PID/pagemap``
(which pages are present anonymous pages: present bit 63 set, file/shared bit 61 clear, not
the shared zero page) and ``/proc/PID/mem`` (only present pages are read, so the target's
page tables are not changed). Pages are fingerprinted with two 64-bit random linear hashes
(numpy), and every group of equal fingerprints is confirmed byte for byte, so contents are
exact. The reference KSM then runs as if the process had called PR_SET_MEMORY_MERGE (one
mm, its pages in address order) until the counters settle; SKSM's saving is what one
MADV_MERGE over every page would reclaim: every page but one per distinct non-zero content.
"""

from __future__ import annotations

import ctypes
import mmap
import re
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from spec import ksm as S

PAGE = S.PAGE_SIZE
WORDS = PAGE // 8
PM_PRESENT, PM_FILE = 1 << 63, 1 << 61
PFN_MASK = (1 << 55) - 1
CHUNK_PAGES = 4096
MAPS_LINE = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \d+\s*(.*)$")
SKIP = ("[vvar]", "[vdso]", "[vsyscall]", "[vvar_vclock]")


class EstimateError(Exception):
    """The process cannot be read (gone, no permission, no private memory)."""


def zero_pfn() -> int:
    """The PFN of the shared zero page (read a never-written page of our own)."""
    m = mmap.mmap(-1, PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                  prot=mmap.PROT_READ | mmap.PROT_WRITE)
    try:
        _ = m[0]
        addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
        with open("/proc/self/pagemap", "rb") as f:
            f.seek(addr // PAGE * 8)
            entry = int.from_bytes(f.read(8), "little")
        return entry & PFN_MASK if entry & PM_PRESENT else -1
    finally:
        import gc
        gc.collect()
        try:
            m.close()
        except BufferError:
            pass


def private_ranges(pid: int) -> list[tuple[int, int, str]]:
    """Private mappings of ``pid`` as (start, end, name), address order."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise EstimateError(f"no process {pid}") from None
    except PermissionError:
        raise EstimateError(f"cannot read /proc/{pid}/maps (permission)") from None
    out = []
    for line in lines:
        m = MAPS_LINE.match(line)
        if not m:
            continue
        start, end, perms, name = int(m[1], 16), int(m[2], 16), m[3], m[4].strip()
        if perms[3] != "p" or name in SKIP or perms[0] != "r":
            continue
        out.append((start, end, name))
    return out


def _present_runs(pm: Any, pid: int, zpfn: int) -> list[tuple[int, int]]:
    """(address, pages) runs of present anonymous pages, from the pagemap."""
    runs: list[tuple[int, int]] = []
    for start, end, _name in private_ranges(pid):
        for a in range(start, end, CHUNK_PAGES * PAGE):
            b = min(end, a + CHUNK_PAGES * PAGE)
            pm.seek(a // PAGE * 8)
            ent = np.frombuffer(pm.read((b - a) // PAGE * 8), dtype=np.uint64)
            anon = ((ent & np.uint64(PM_PRESENT)) != 0) & ((ent & np.uint64(PM_FILE)) == 0)
            if zpfn >= 0:
                anon &= (ent & np.uint64(PFN_MASK)) != np.uint64(zpfn)
            idx = np.flatnonzero(anon)
            if not len(idx):
                continue
            breaks = np.flatnonzero(np.diff(idx) != 1) + 1
            for run in np.split(idx, breaks):
                runs.append((a + int(run[0]) * PAGE, len(run)))
    return runs


def read_pages(pid: int) -> tuple[npt.NDArray[np.uint64], int]:
    """Every present anonymous page of ``pid`` (n x 512 uint64 words), and bytes read. The
    pages are read straight into one prefaulted buffer (MAP_POPULATE)."""
    zpfn = zero_pfn()
    try:
        pm = open(f"/proc/{pid}/pagemap", "rb")
        mem = open(f"/proc/{pid}/mem", "rb", buffering=0)
    except FileNotFoundError:
        raise EstimateError(f"no process {pid}") from None
    except PermissionError:
        raise EstimateError(f"cannot open /proc/{pid}/mem (needs root or ptrace access)") \
            from None
    with pm, mem:
        runs = _present_runs(pm, pid, zpfn)
        total = sum(n for _a, n in runs)
        if not total:
            raise EstimateError(f"process {pid} has no present private anonymous pages")
        buf = mmap.mmap(-1, total * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
                        | getattr(mmap, "MAP_POPULATE", 0))
        view = memoryview(buf)
        got = 0
        for addr, n in runs:
            try:
                mem.seek(addr)
                k = mem.readinto(view[got * PAGE:(got + n) * PAGE])
            except OSError:
                continue
            got += (k or 0) // PAGE
    pages = np.frombuffer(buf, dtype=np.uint64, count=got * WORDS).reshape(got, WORDS)
    return pages, got * PAGE


def content_ids(pages: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """Dense content ids (0 = zero-filled page), exact: pages are grouped by a cheap 64-bit
    fingerprint (word sum, word xor, a few words at fixed offsets), every member is then
    compared byte for byte with its group's first page, and the rare pages that differ are
    regrouped by a cryptographic digest of their bytes."""
    import hashlib

    f = np.empty(len(pages), dtype=np.uint64)
    step = 2048
    with np.errstate(over="ignore"):
        for i in range(0, len(pages), step):
            p = pages[i:i + step]
            h = p.sum(axis=1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            h ^= np.bitwise_xor.reduce(p, axis=1) * np.uint64(0xC2B2AE3D27D4EB4F)
            for n, w in enumerate((0, 1, 3, 17, 129, 511)):
                h ^= p[:, w] * np.uint64(0x165667B19E3779F9 + 2 * n)
            f[i:i + step] = h
    _, inv = np.unique(f, return_inverse=True)
    inv = inv.reshape(-1).astype(np.int64)
    first = np.full(int(inv.max()) + 1, -1, dtype=np.int64)
    rev = np.arange(len(inv) - 1, -1, -1)
    first[inv[rev]] = rev
    rep = first[inv]
    differ = np.flatnonzero(rep != np.arange(len(inv)))
    if len(differ):
        # compare in slices, through preallocated buffers (fresh temporaries would each be
        # page-faulted in: that, not the comparison, dominated the time)
        step = 1024
        a = np.empty((step, WORDS), dtype=np.uint64)
        b = np.empty((step, WORDS), dtype=np.uint64)
        eq = np.empty((step, WORDS), dtype=bool)
        bad_parts = []
        for i in range(0, len(differ), step):
            d = differ[i:i + step]
            k = len(d)
            np.take(pages, d, axis=0, out=a[:k])
            np.take(pages, rep[d], axis=0, out=b[:k])
            np.equal(a[:k], b[:k], out=eq[:k])
            bad_parts.append(d[~eq[:k].all(axis=1)])
        bad = np.concatenate(bad_parts)
        if len(bad):   # fingerprint collisions: exact regrouping of those pages
            base = int(inv.max()) + 1
            seen: dict[bytes, int] = {}
            for i in bad.tolist():
                digest = hashlib.sha256(pages[i].tobytes()).digest()
                inv[i] = seen.setdefault(digest, base + len(seen))
    ids = inv + 1
    ids[~pages.any(axis=1)] = 0
    return ids


def predict(ids: npt.NDArray[np.int64], use_zero_pages: int = 0) -> dict[str, Any]:
    """The reference KSM's converged counters for one mm holding ``ids`` in address order."""
    from reference.ksm import Ksm
    k = Ksm({"use_zero_pages": use_zero_pages})
    k.create_process_keys("target", ids)
    k.madvise("target", 0, len(ids), "mergeable")
    rec = k.scan()
    distinct_nonzero = len(np.unique(ids[ids != 0]))
    sksm_saved = int(len(ids) - distinct_nonzero)
    return {"ksm": rec, "ksm_saved_bytes": (rec["pages_sharing"] + rec["ksm_zero_pages"]) * PAGE,
            "sksm_saved_pages": sksm_saved, "sksm_saved_bytes": sksm_saved * PAGE}


def estimate_pid(pid: int, use_zero_pages: int = 0) -> dict[str, Any]:
    t0 = time.perf_counter()
    pages, nbytes = read_pages(pid)
    t1 = time.perf_counter()
    ids = content_ids(pages)
    t2 = time.perf_counter()
    out = predict(ids, use_zero_pages)
    t3 = time.perf_counter()
    out.update({"pid": pid, "pages": int(len(ids)), "zero_pages": int((ids == 0).sum()),
                "distinct_contents": int(len(np.unique(ids))), "bytes_read": nbytes,
                "seconds": {"read": round(t1 - t0, 4), "fingerprint": round(t2 - t1, 4),
                            "model": round(t3 - t2, 4)},
                "mb_per_s": round(nbytes / 1e6 / max(t3 - t0, 1e-9), 1),
                "fingerprint_mb_per_s": round(nbytes / 1e6 / max(t2 - t1, 1e-9), 1)})
    return out


def print_text(r: dict[str, Any]) -> None:
    k = r["ksm"]
    print(f"pid {r['pid']}: {r['pages']} present anonymous pages ({r['pages'] * PAGE >> 20} "
          f"MiB), {r['zero_pages']} zero-filled, {r['distinct_contents']} distinct contents")
    print(f"KSM (PR_SET_MEMORY_MERGE, defaults): pages_shared {k['pages_shared']}, "
          f"pages_sharing {k['pages_sharing']}, pages_unshared {k['pages_unshared']}, "
          f"general_profit {k['general_profit']} B; saves {r['ksm_saved_bytes'] >> 10} KiB")
    print(f"SKSM (MADV_MERGE on everything): saves {r['sksm_saved_pages']} pages "
          f"({r['sksm_saved_bytes'] >> 10} KiB)")
    print(f"throughput: {r['mb_per_s']} MB/s overall ({r['bytes_read']} bytes; read "
          f"{r['seconds']['read']} s, fingerprint {r['seconds']['fingerprint']} s, model "
          f"{r['seconds']['model']} s)")
