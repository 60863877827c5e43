"""Access-stream generators for the tiering simulator, and a parser for valgrind lackey traces.

A workload yields, chunk by chunk, the pages touched (numbered 0 .. footprint-1) and the NUMA
node of the CPU that touched each. Generators are vectorised (numpy) and seeded.

* ``uniform``: every page equally likely.
* ``zipf``: Zipf(theta) key popularity (YCSB-style, theta 0.99), keys mapped to pages by a
  random permutation.
* ``gups``: HeMem/Colloid GUPS with a hot set: 90 % of updates to a hot set of 10 % of the
  region, 10 % uniform over the region.
* ``hotset-shift``: ``gups`` where, at ``shift_at`` of the run, the first quarter of the hot
  set moves to pages that were cold (HeMem gups-hotset-move.c: indices below hotsize/4 shift
  by +hotsize).
* ``stairs``: masim stairs.cfg: ten regions, the hot one (90 % of accesses) advances at equal
  intervals.
* ``graph500``: two CPU nodes, each touching only its own half of the pages (MPI ranks'
  private memory), Zipf(0.6) inside it: the shape of the pghot Graph500 runs.
* ``lackey:FILE``: a real trace: ``valgrind --tool=lackey --trace-mem=yes --log-file=FILE``;
  data accesses (L, S, M) replayed in order, cyclically, pages renumbered densely.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

WORKLOADS = ("uniform", "zipf", "gups", "hotset-shift", "stairs", "graph500")

_LACKEY = re.compile(r"^\s*([ILSM])\s+([0-9a-fA-F]+),(\d+)")


class WorkloadError(ValueError):
    """Bad workload name, parameters or trace."""


def parse_lackey(lines: Iterable[str], instructions: bool = False) -> np.ndarray:
    """Byte addresses of the accesses in a lackey log, in order (M counts as one access).

    Lines that are not access records (the ``==pid==`` banner, blank lines) are skipped.
    Raises :class:`WorkloadError` when no access record is found.
    """
    out = []
    for line in lines:
        m = _LACKEY.match(line)
        if not m:
            continue
        kind, addr, _size = m.groups()
        if kind == "I" and not instructions:
            continue
        out.append(int(addr, 16))
    if not out:
        raise WorkloadError("no lackey access records (I/L/S/M addr,size) found")
    return np.array(out, dtype=np.uint64)


class Workload:
    """A seeded access stream over ``footprint`` pages."""

    name = "workload"
    #: fraction of the run at which the hot set shifts (None: no shift).
    shift_at: float | None = None
    cpu_nodes = 1

    def __init__(self, footprint: int, seed: int = 0) -> None:
        if footprint < 16:
            raise WorkloadError("a workload needs at least 16 pages")
        self.footprint = footprint
        self.rng = np.random.default_rng(seed)

    def generate(self, n: int, frac: float) -> tuple[np.ndarray, np.ndarray]:
        """``n`` accesses at ``frac`` (0..1) of the run: (pages int64, cpu node int8)."""
        return self.pages(n, frac), np.zeros(n, dtype=np.int8)

    def pages(self, n: int, frac: float) -> np.ndarray:
        raise NotImplementedError


class Uniform(Workload):
    name = "uniform"

    def pages(self, n: int, frac: float) -> np.ndarray:
        return self.rng.integers(0, self.footprint, n)


def zipf_cdf(n: int, theta: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** theta
    c = np.cumsum(w)
    return c / c[-1]


class ZipfKeys:
    """``np.searchsorted(cdf, u)`` for uniform ``u`` in [0, 1), exactly, through a guide table
    (Chen and Asau): ``guide[g]`` is the first key whose cdf reaches ``g / G`` (G a power of
    two, so ``floor(u * G) / G <= u`` holds exactly in floating point), and each key then
    walks up while its cdf is below ``u`` (a few steps: G is about 4 keys per slot). One
    gather per draw instead of a binary search over a cdf far larger than the cache."""

    def __init__(self, cdf: np.ndarray) -> None:
        if not len(cdf) or cdf[-1] != 1.0:
            raise WorkloadError("ZipfKeys needs a cdf ending at 1.0")
        self.cdf = cdf
        self.slots = 1 << max(10, min(22, (4 * len(cdf) - 1).bit_length()))
        # guide[g] = #{i: cdf[i] < g/G} = #{i: floor(cdf[i] G) < g} (both sides scaled by a
        # power of two, exactly): what np.searchsorted(cdf, g / G) returns, by counting.
        below = np.bincount((cdf * self.slots).astype(np.int64), minlength=self.slots + 1)
        self.guide = np.zeros(self.slots + 1, dtype=np.int32)
        np.cumsum(below[:self.slots], out=self.guide[1:])

    def __call__(self, u: np.ndarray) -> np.ndarray:
        k = self.guide[(u * self.slots).astype(np.int64)].astype(np.int64)
        cdf = self.cdf
        # cdf[-1] == 1.0 > u: the walk stops at the last key at the latest.
        act = np.flatnonzero(cdf[k] < u)
        while len(act):
            k[act] += 1
            act = act[cdf[k[act]] < u[act]]
        return k


class Zipf(Workload):
    name = "zipf"

    def __init__(self, footprint: int, seed: int = 0, theta: float = 0.99) -> None:
        super().__init__(footprint, seed)
        self.cdf = zipf_cdf(footprint, theta)
        self.keys = ZipfKeys(self.cdf)
        self.perm = self.rng.permutation(footprint)

    def pages(self, n: int, frac: float) -> np.ndarray:
        # ZipfKeys never returns past the last key (the cdf ends at 1.0 > every draw)
        return self.perm[self.keys(self.rng.random(n))]


class Gups(Workload):
    name = "gups"

    def __init__(self, footprint: int, seed: int = 0, hot_frac: float = 0.1,
                 hot_share: float = 0.9) -> None:
        super().__init__(footprint, seed)
        self.hot = max(4, int(footprint * hot_frac))
        self.hot_start = int(self.rng.integers(0, footprint - 2 * self.hot))
        self.hot_share = hot_share

    def hot_pages(self, idx: np.ndarray, frac: float) -> np.ndarray:
        return self.hot_start + idx

    def pages(self, n: int, frac: float) -> np.ndarray:
        hot = self.rng.random(n) < self.hot_share
        out = self.rng.integers(0, self.footprint, n)
        k = int(hot.sum())
        out[hot] = self.hot_pages(self.rng.integers(0, self.hot, k), frac)
        return out


class HotsetShift(Gups):
    name = "hotset-shift"
    shift_at = 0.5

    def hot_pages(self, idx: np.ndarray, frac: float) -> np.ndarray:
        if self.shift_at is not None and frac >= self.shift_at:
            idx = np.where(idx < self.hot // 4, idx + self.hot, idx)
        return self.hot_start + idx


class Stairs(Workload):
    name = "stairs"

    def __init__(self, footprint: int, seed: int = 0, regions: int = 10) -> None:
        super().__init__(footprint, seed)
        self.regions = regions
        self.size = footprint // regions

    def pages(self, n: int, frac: float) -> np.ndarray:
        r = min(int(frac * self.regions), self.regions - 1)
        out = self.rng.integers(0, self.footprint, n)
        hot = self.rng.random(n) < 0.9
        out[hot] = r * self.size + self.rng.integers(0, self.size, int(hot.sum()))
        return out


class Graph500(Workload):
    name = "graph500"
    cpu_nodes = 2

    def __init__(self, footprint: int, seed: int = 0, theta: float = 0.6) -> None:
        super().__init__(footprint, seed)
        self.half = footprint // 2
        self.cdf = zipf_cdf(self.half, theta)
        self.keys = ZipfKeys(self.cdf)
        self.perm = self.rng.permutation(self.half)

    def generate(self, n: int, frac: float) -> tuple[np.ndarray, np.ndarray]:
        cpu = self.rng.integers(0, 2, n).astype(np.int8)
        keys = np.minimum(self.keys(self.rng.random(n)), self.half - 1)
        return self.perm[keys] + cpu.astype(np.int64) * self.half, cpu


class Trace(Workload):
    """Replays a lackey trace cyclically; the footprint is the number of distinct pages."""

    name = "lackey"

    def __init__(self, addresses: np.ndarray, page_shift: int = 12, seed: int = 0) -> None:
        pages = (addresses >> np.uint64(page_shift)).astype(np.int64)
        _, dense = np.unique(pages, return_inverse=True)
        self.stream = dense.astype(np.int64)
        super().__init__(max(16, int(dense.max()) + 1), seed)
        self.pos = 0

    def pages(self, n: int, frac: float) -> np.ndarray:
        idx = (self.pos + np.arange(n)) % len(self.stream)
        self.pos = int((self.pos + n) % len(self.stream))
        return self.stream[idx]


def make(name: str, footprint: int, seed: int = 0) -> Workload:
    """A workload by name (``lackey:FILE`` reads a trace; its footprint is the trace's)."""
    if name.startswith("lackey:"):
        path = name.split(":", 1)[1]
        try:
            with open(path, errors="replace") as f:
                return Trace(parse_lackey(f), seed=seed)
        except OSError as e:
            raise WorkloadError(f"cannot read lackey trace {path}: {e.strerror}") from None
    table: dict[str, type[Workload]] = {"uniform": Uniform, "zipf": Zipf, "gups": Gups,
                                        "hotset-shift": HotsetShift, "stairs": Stairs,
                                        "graph500": Graph500}
    if name not in table:
        raise WorkloadError(f"unknown workload {name!r} (known: {', '.join(WORKLOADS)}, "
                            "lackey:FILE)")
    return table[name](footprint, seed)
