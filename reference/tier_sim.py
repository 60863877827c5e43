"""A fast tiered-memory simulator: workloads, access sources, the TIER trackers, demotion, metrics.

Each simulated access stands for ``real_accesses_per_s / accesses_per_s`` real LLC misses of
64 B (that ratio sets the bandwidth load); time advances in chunks of ``chunk_ms``. Per chunk
the simulator draws the accesses (numpy), charges each its loaded latency (idle latency of the
CPU-node/memory-node pair times ``1 + u / (2 (1 - u))`` for the memory node's utilisation u,
and the inter-socket link's when it is crossed), feeds the policy's access source, runs the
promoter at its cadence (reference.tiering.TierMachine, the spec's twin), and demotes the
least recently used top-tier pages when a top-tier node's free pages fall below 2 % (kswapd
with demotion enabled, down to 3 % free).

Sources: NUMA hint faults (the scanner marks ``scan_pages`` pages PROT_NONE every
``scan_period_ms``, top-tier pages skipped, and the first access to each faults), hardware
samples (one per ``hw_sample_period`` accesses, per-CPU rings of 50 entries drained every ms:
extra samples are dropped), and the CXL device (every access to a lower-tier page, its
CHMU downsampling 2**chmu_downsample). Hardware figures are round numbers (tiering.md §6,
UNVERIFIED): local DRAM 100 ns, remote DRAM 180 ns, CXL 250 ns (270 ns from the far socket),
200 GB/s per DRAM node, 64 GB/s per CXL device (PCIe 5 x16), 100 GB/s between sockets.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reference.tier_workloads import Workload, make
from reference.tiering import FIRST_UNSEEN, TierMachine, first_occurrences
from spec.tier_common import KPROMOTED_HW_HINTS, KPROMOTED_PGTABLE_SCAN, PGHOT_HINT_FAULT
from spec.tier_state import NodeConfig, TierConfig

POLICIES = ("none", "numab2", "kpromoted", "pghot-default", "pghot-precise", "chmu")
#: Also runnable, not in the default matrix: pghot v3 fed by page-table A-bit scans (no
#: accessing node: promotions go to pghot_target_nid).
EXTRA_POLICIES = ("pghot-v3-abit",)
DEFAULT_WORKLOADS = ("uniform", "zipf", "gups", "hotset-shift", "stairs")
VARIANT = {"none": "numab2", "numab2": "numab2", "kpromoted": "kpromoted-v0",
           "pghot-v3-abit": "pghot-v3",
           "pghot-default": "pghot-v6-default", "pghot-precise": "pghot-v6-precise",
           "chmu": "chmu"}
PAGE = 4096
GIB = 1 << 30


@dataclass(frozen=True)
class MemNode:
    name: str
    capacity: int
    toptier: bool
    has_cpu: bool
    bandwidth_gbs: float
    #: the socket the node hangs off (crossing sockets loads the link).
    socket: int = 0


@dataclass(frozen=True)
class Machine:
    nodes: tuple[MemNode, ...]
    #: idle latency, ns, [cpu node][memory node]
    latency_ns: tuple[tuple[float, ...], ...]
    link_gbs: float = 100.0

    @property
    def cpu_nodes(self) -> list[int]:
        return [i for i, n in enumerate(self.nodes) if n.has_cpu]


def dram_cxl(footprint: int, fast_frac: float = 0.25) -> Machine:
    """One socket: DRAM holding ``fast_frac`` of the footprint, and a CXL expander."""
    fast = max(16, int(footprint * fast_frac))
    return Machine((MemNode("DRAM", fast, True, True, 200.0),
                    MemNode("CXL", 2 * footprint, False, False, 64.0)),
                   ((100.0, 250.0), (0.0, 0.0)))


def two_socket(footprint: int) -> Machine:
    """The pghot test box, scaled: two DRAM nodes of 1.28x the data each, one CXL node."""
    cap = int(footprint * 1.28)
    return Machine((MemNode("DRAM0", cap, True, True, 200.0, 0),
                    MemNode("DRAM1", cap, True, True, 200.0, 1),
                    MemNode("CXL", int(footprint * 2.56), False, False, 64.0, 0)),
                   ((100.0, 180.0, 250.0), (180.0, 100.0, 270.0), (0.0, 0.0, 0.0)))


@dataclass
class SimParams:
    duration_s: float = 20.0
    accesses_per_s: int = 1_000_000
    real_accesses_per_s: float = 5e8
    chunk_ms: int = 10
    footprint: int = 1 << 18
    hw_sample_period: int = 100
    hw_ring: int = 50
    nr_cpus: int = 8
    scan_period_ms: int = 1000
    #: pages made PROT_NONE per scan period; None: the whole footprint (many threads share
    #: one mm and each advances its scan offset, so large processes sweep quickly).
    scan_pages: int | None = None
    kmigrated_ms: int = 100
    #: page-table A-bit scan period (the pghot-v3-abit policy): every accessed lower-tier page
    #: is reported once per period, without an accessing node.
    abit_period_ms: int = 1000
    kpromoted_ms: int = 1000
    chmu_epoch_ms: int = 100
    chmu_downsample: int = 4
    demotion: bool = True
    #: "spill": the fast tier starts 90 % full of random pages; "slow": everything on the
    #: lowest tier (the pghot runs move the data to CXL before measuring).
    initial: str = "spill"
    pingpong_s: float = 10.0
    #: pghot_freq_threshold / kpromoted threshold (the pghot comparisons with NUMA balancing
    #: ran with 1, "to match base").
    freq_threshold: int = 2
    bin_ms: int = 100
    seed: int = 0


@dataclass
class SimResult:
    policy: str
    workload: str
    accesses: int
    fast_tier_hit_ratio: float
    mean_latency_ns: float
    allfast_latency_ns: float
    promotions: int
    demotions: int
    ping_pong: int
    precision: float | None
    recall: float | None
    recovery_s: float | None
    samples: int
    hint_faults: int
    pte_updates: int
    metadata_bytes_per_gib: float
    seconds: float
    series_t: list[float] = field(default_factory=list)
    series_hit: list[float] = field(default_factory=list)
    remote_promotions: int = 0
    slowdown_vs_allfast: float = 0.0
    speedup_vs_none: float | None = None

    def to_json(self) -> dict[str, Any]:
        def r(x: float | None, n: int = 4) -> float | None:
            return None if x is None else round(float(x), n)
        return {"policy": self.policy, "workload": self.workload,
                "fast_tier_hit_ratio": r(self.fast_tier_hit_ratio),
                "mean_latency_ns": r(self.mean_latency_ns, 1),
                "slowdown_vs_allfast": r(self.slowdown_vs_allfast, 3),
                "speedup_vs_none": r(self.speedup_vs_none, 3),
                "promotions": self.promotions, "demotions": self.demotions,
                "ping_pong": self.ping_pong, "precision": r(self.precision),
                "recall": r(self.recall), "recovery_s": r(self.recovery_s, 2),
                "detection": {"samples": self.samples, "hint_faults": self.hint_faults,
                              "pte_updates": self.pte_updates},
                "metadata_bytes_per_gib": r(self.metadata_bytes_per_gib, 1),
                "remote_promotions": self.remote_promotions, "accesses": self.accesses}


#: bytes of tracker state per lower-tier page, and fixed bytes (tiering.md §1, computed).
KPROMOTED_RECORD_BYTES = 56
KPROMOTED_STATIC_BYTES = (1 << 16) * (8 + 32)   # hlist_head + struct mutex per bucket


def metadata_bytes(policy: str, slow_pages: int, peak_records: int, hotlist: int = 64) -> int:
    """Tracker bytes for ``slow_pages`` lower-tier 4 KiB pages."""
    if policy in ("none", "numab2"):
        return 0   # the scan time lives in the folio's cpupid bits
    if policy == "kpromoted":
        # records only; the static table (KPROMOTED_STATIC_BYTES, 2.5 MiB) is not per GiB.
        return KPROMOTED_RECORD_BYTES * peak_records
    sections = -(-slow_pages * PAGE // (128 << 20))
    if policy == "pghot-default":
        return slow_pages + 8 * sections
    if policy == "pghot-precise":
        return 4 * slow_pages + 8 * sections
    if policy == "pghot-v3-abit":
        return 8 * slow_pages + 8 * sections
    if policy == "chmu":
        return 8 * hotlist
    raise ValueError(policy)


def per_tib(policy: str, peak_record_frac: float = 1.0) -> int:
    """Bytes per TiB of lower tier (kpromoted: a record per tracked page, fraction given)."""
    pages = (1 << 40) // PAGE
    return metadata_bytes(policy, pages, int(pages * peak_record_frac))


def floor_quantile(vals: np.ndarray, q: float) -> int:
    """``floor(np.quantile(vals, q))`` for integer ``vals``, computed as numpy's default
    ("linear") method does (virtual index (n - 1) q, the two order statistics around it, and
    numpy's ``_lerp``: ``a + (b - a) g`` below g = 0.5, ``b - (b - a) (1 - g)`` from it) but
    without its generic machinery; the end points go to np.quantile itself."""
    n = len(vals)
    v = (n - 1) * q
    if not 0 <= v < n - 1:
        return int(np.floor(np.quantile(vals, q)))
    lo = math.floor(v)
    g = v - lo
    part = np.partition(vals, (lo, lo + 1))
    a, b = int(part[lo]), int(part[lo + 1])
    d = b - a
    return math.floor(b - d * (1 - g) if g >= 0.5 else a + d * g)


def _loaded(u: np.ndarray | float) -> Any:
    u = np.minimum(u, 0.95)
    return 1.0 + u / (2.0 * (1.0 - u))


class _Run:
    def __init__(self, policy: str, wl: Workload, machine: Machine, p: SimParams) -> None:
        self.policy, self.wl, self.m, self.p = policy, wl, machine, p
        self.rng = np.random.default_rng(p.seed + 7)
        n = wl.footprint
        nodes = machine.nodes
        self.top = np.array([nd.toptier for nd in nodes])
        slow = [i for i, nd in enumerate(nodes) if not nd.toptier]
        placement = np.full(n, slow[0], dtype=np.int64)
        if p.initial == "spill":
            order = self.rng.permutation(n)
            at = 0
            for i, nd in enumerate(nodes):
                if nd.toptier:
                    k = min(int(nd.capacity * 0.9), n - at)
                    placement[order[at:at + k]] = i
                    at += k
        elif p.initial != "slow":
            raise ValueError(f"unknown initial placement {p.initial!r}")
        cfg = TierConfig(
            variant=VARIANT[policy],
            nodes=tuple(NodeConfig(nd.capacity, nd.toptier, nd.has_cpu,
                                   max(1, nd.capacity // 100)) for nd in nodes),
            placement=tuple(placement.tolist()), enough_floor_pages=0,
            pages_per_section=32768, chmu_counters=4096, chmu_hotlist=1024,
            chmu_downsample=p.chmu_downsample, chmu_threshold=2,
            pghot_target_nid=0,
            freq_threshold=p.freq_threshold if policy.startswith("pghot") else 2)
        self.mach = TierMachine(cfg)
        self.prot_none = np.zeros(n, dtype=bool)
        self.first_scratch = np.full(n, FIRST_UNSEEN, dtype=np.int64)
        #: chunk index of each page's last access (the LRU order kswapd demotes by).
        self.last_access = np.zeros(n, dtype=np.int32)
        self.abit = np.zeros(n, dtype=bool)
        #: node of the CPU that last touched each page (remote-promotion accounting).
        self.last_cpu = np.zeros(n, dtype=np.int64)
        self.promote_time = np.full(n, -10**12, dtype=np.int64)
        self.scan_pos = 0
        self.lat_sum = 0.0
        self.allfast_sum = 0.0
        self.hits = 0
        self.accesses = 0
        self.promotions = 0
        self.remote_promotions = 0
        self.demotions = 0
        self.ping_pong = 0
        self.samples = 0
        self.faults = 0
        self.pte_updates = 0
        self.peak_records = 0
        self.mig_bytes = np.zeros(len(nodes))
        self.interval_counts = np.zeros(n, dtype=np.int64)
        self.interval_promoted: list[np.ndarray] = []
        self.interval_pages: list[np.ndarray] = []
        self.prec_hit = 0
        self.prec_all = 0
        self.recall_sum = 0.0
        self.recall_n = 0
        self.bin_hits: list[int] = []
        self.bin_acc: list[int] = []

    # --- sources -------------------------------------------------------------------------

    def scan(self, now_j: int) -> None:
        n = self.wl.footprint
        k = n if self.p.scan_pages is None else min(n, self.p.scan_pages)
        idx = (self.scan_pos + np.arange(k)) % n
        self.scan_pos = int((self.scan_pos + k) % n)
        if self.policy == "numab2":
            self.mach.numa_scan(idx, now_j)
        else:
            slow = idx[~self.top[self.mach.node_of[idx]]]
            self.prot_none[slow] = True
        self.pte_updates += int((~self.top[self.mach.node_of[idx]]).sum())

    def abit_scan(self, now_j: int) -> None:
        """A page-table walk: report every lower-tier page whose Accessed bit is set (no
        node), then clear the bits. Every PTE of the footprint is visited."""
        mach = self.mach
        idx = np.flatnonzero(self.abit & ~self.top[mach.node_of])
        self.abit[:] = False
        self.pte_updates += self.wl.footprint
        self.samples += len(idx)
        if len(idx):
            mach.record_batch(idx, np.full(len(idx), -1, dtype=np.int64),
                              KPROMOTED_PGTABLE_SCAN, np.full(len(idx), now_j, dtype=np.int64))

    def faults_of(self, pages: np.ndarray) -> np.ndarray:
        hit = np.flatnonzero(self.prot_none[pages])
        if not len(hit):
            return hit
        idx = hit[first_occurrences(pages[hit], self.first_scratch)]
        self.prot_none[pages[idx]] = False
        return idx

    def hw_samples(self, n: int, t0_ms: int) -> np.ndarray:
        p = self.p
        idx = np.flatnonzero(self.rng.random(n) < 1.0 / p.hw_sample_period)
        if not len(idx):
            return idx
        cpu = idx % p.nr_cpus
        ms = t0_ms + idx * p.chunk_ms // n
        key = cpu * 1_000_000 + ms
        order = np.argsort(key, kind="stable")
        k = key[order]
        start = np.r_[True, k[1:] != k[:-1]]
        pos = np.arange(len(k)) - np.maximum.accumulate(np.where(start, np.arange(len(k)), 0))
        keep = np.sort(order[pos < p.hw_ring])
        return idx[keep]

    # --- promotion bookkeeping -----------------------------------------------------------

    def promoted(self, out: list[tuple[int, int, str]], now_ns: int) -> None:
        if not out:
            return
        pf = np.fromiter((o[0] for o in out), dtype=np.int64, count=len(out))
        tg = np.fromiter((o[1] for o in out), dtype=np.int64, count=len(out))
        self.promoted_arrays(pf, tg, now_ns)

    def promoted_arrays(self, pf: np.ndarray, tg: np.ndarray, now_ns: int) -> None:
        if not len(pf):
            return
        self.promotions += len(pf)
        self.remote_promotions += int(np.count_nonzero(self.last_cpu[pf] != tg))
        self.promote_time[pf] = now_ns
        self.interval_promoted.append(pf)
        self.mig_bytes += np.bincount(tg, minlength=len(self.mig_bytes)) * PAGE

    def demote_if_needed(self, now_ns: int) -> None:
        if not self.p.demotion:
            return
        mach = self.mach
        for nid, nd in enumerate(self.m.nodes):
            if not nd.toptier:
                continue
            free = nd.capacity - int(mach.used[nid])
            if free >= 0.02 * nd.capacity:
                continue
            want = min(int(0.03 * nd.capacity) - free, int(mach.used[nid]))
            if want <= 0:
                continue
            victims = self.oldest(nid, want)
            moved = mach.demote_batch(victims)
            vict = victims[:moved]
            self.demotions += moved
            self.ping_pong += int((now_ns - self.promote_time[vict] <
                                   self.p.pingpong_s * 1e9).sum())
            self.mig_bytes += np.bincount(mach.node_of[vict], minlength=len(self.mig_bytes)) * PAGE
            self.mig_bytes[nid] += PAGE * moved

    def oldest(self, nid: int, want: int) -> np.ndarray:
        """The ``want`` least recently accessed pages of node ``nid`` (exact): the quantile of
        a sample of the node's pages gives a cutoff, and only pages at or below it are
        partitioned; without a usable sample, all the node's pages are."""
        la, node_of = self.last_access, self.mach.node_of
        used = int(self.mach.used[nid])
        if want < used // 4:
            sample = self.rng.integers(0, len(la), 4096)
            sample = sample[node_of[sample] == nid]
            if len(sample) >= 64:
                cutoff = floor_quantile(la[sample], min(1.0, 2.0 * want / used))
                # la holds integers: la <= the quantile iff la <= its floor, compared as
                # int32 (not by converting the whole array to float64).
                below = la <= np.int32(cutoff)
                below &= node_of == nid
                cand = np.flatnonzero(below)
                if len(cand) >= want:
                    return cand[np.argpartition(la[cand], want - 1)[:want]]
        on = np.flatnonzero(node_of == nid)
        return on[np.argpartition(la[on], want - 1)[:want]]

    # --- oracle --------------------------------------------------------------------------

    def close_interval(self) -> None:
        k = int(sum(nd.capacity for nd in self.m.nodes if nd.toptier))
        k = min(k, self.wl.footprint)
        if self.interval_pages:
            self.interval_counts += np.bincount(np.concatenate(self.interval_pages),
                                                minlength=len(self.interval_counts))
            self.interval_pages = []
        counts = self.interval_counts
        touched = int((counts > 0).sum())
        k = min(k, touched)
        if k > 0:
            hot = np.zeros(len(counts), dtype=bool)
            hot[np.argpartition(-counts, k - 1)[:k]] = True
            hot &= counts > 0
            fast = self.top[self.mach.node_of]
            self.recall_sum += float((hot & fast).sum()) / max(1, int(hot.sum()))
            self.recall_n += 1
            if self.interval_promoted:
                pf = np.concatenate(self.interval_promoted)
                self.prec_hit += int(hot[pf].sum())
                self.prec_all += len(pf)
        self.interval_counts[:] = 0
        self.interval_promoted = []

    # --- the loop ------------------------------------------------------------------------

    def latency(self, cnt: np.ndarray, scale: float, chunk_s: float, bw: np.ndarray,
                remote: np.ndarray | None, lat_cpu: np.ndarray, lat_own: np.ndarray,
                bw_own: np.ndarray, cpu_nodes: list[int]) -> int:
        """Charge one chunk's accesses (``cnt[cpu node][memory node]``) their loaded latency
        and the all-fast baseline's; returns the fast-tier hits."""
        node_bytes = cnt.sum(axis=0) * scale * 64 + self.mig_bytes
        self.mig_bytes[:] = 0
        u = node_bytes / chunk_s / bw
        cnt_cpu = cnt[cpu_nodes]
        link_bytes = float((cnt_cpu * remote).sum()) * scale * 64 \
            if remote is not None else 0.0
        lu = _loaded(link_bytes / chunk_s / (self.m.link_gbs * 1e9))
        f = _loaded(u)
        per = lat_cpu * f[None, :]
        if remote is not None:
            per = np.where(remote, per * lu, per)
        self.lat_sum += float((cnt_cpu * per).sum())
        # all-fast: each CPU node's accesses on its own local DRAM
        own = cnt.sum(axis=1)[cpu_nodes]
        u_own = own * scale * 64 / chunk_s / bw_own
        self.allfast_sum += float((own * lat_own * _loaded(u_own)).sum())
        return int(cnt[:, self.top].sum())

    def run(self, tick: Callable[[], None] | None = None) -> SimResult:
        p, m, mach = self.p, self.m, self.mach
        t_start = time.process_time()
        chunk_ns = p.chunk_ms * 1_000_000
        n_chunks = int(p.duration_s * 1000 / p.chunk_ms)
        per_chunk = max(1, int(p.accesses_per_s * p.chunk_ms / 1000))
        scale = p.real_accesses_per_s / p.accesses_per_s
        nn = len(m.nodes)
        lat = np.array(m.latency_ns)
        bw = np.array([nd.bandwidth_gbs for nd in m.nodes]) * 1e9
        sockets = np.array([nd.socket for nd in m.nodes])
        cpu_nodes = m.cpu_nodes
        chunk_s = p.chunk_ms / 1000
        bins_per = max(1, p.bin_ms // p.chunk_ms)
        bh = ba = 0
        pol = self.policy
        # Loop invariants, hoisted (the same values as computing them per chunk).
        cpu_arr = np.asarray(cpu_nodes, dtype=np.int64)
        remote = sockets[None, :] != sockets[cpu_nodes][:, None] if len(cpu_nodes) else None
        lat_cpu = lat[cpu_nodes]
        lat_own = lat[cpu_nodes, cpu_nodes]
        bw_own = bw[cpu_nodes]
        #: one CPU node: every access comes from it (the workload's CPU indices are all 0).
        one_cpu = len(cpu_nodes) == 1
        cpus_one = np.full(per_chunk, cpu_nodes[0], dtype=np.int64) if one_cpu else None
        cnt_buf = np.zeros((nn, nn), dtype=np.int64)
        #: last_cpu starts at 0: with node 0 the only CPU node it never changes.
        track_cpu = not (one_cpu and cpu_nodes[0] == 0)
        offs = (np.arange(per_chunk) * p.chunk_ms) // per_chunk
        #: one CPU node, two memory nodes, one socket (dram_cxl): the latency model below on
        #: Python floats, the same operations in the same order as the array form (numpy's
        #: sum of two elements is their one addition; the link term is 0 and its factor 1).
        scalar = one_cpu and nn == 2 and not bool(remote.any()) if remote is not None \
            else False
        c0 = cpu_nodes[0] if cpu_nodes else 0
        lat0, lat1 = (float(x) for x in lat[c0]) if nn == 2 else (0.0, 0.0)
        bw0, bw1 = (float(x) for x in bw) if nn == 2 else (0.0, 0.0)
        top0, top1 = (bool(x) for x in self.top) if nn == 2 else (False, False)
        lat_oo, bw_oo = float(lat[c0][c0]), float(bw[c0])
        for c in range(n_chunks):
            t0 = c * chunk_ns
            frac = c / n_chunks
            now_j = t0 // 1_000_000
            if pol in ("numab2", "pghot-default", "pghot-precise") and \
                    (t0 // 1_000_000) % p.scan_period_ms == 0:
                self.scan(now_j)
            pages, cpus8 = self.wl.generate(per_chunk, frac)
            if one_cpu:
                assert cpus_one is not None
                cpus = cpus_one
                mem = mach.node_of[pages]
                cnt = cnt_buf
                cnt[cpu_nodes[0]] = np.bincount(mem, minlength=nn)
            else:
                cpus = cpu_arr[cpus8.astype(np.int64)]
                mem = mach.node_of[pages].astype(np.int64)
                cnt = np.bincount(cpus * nn + mem, minlength=nn * nn).reshape(nn, nn)
            if scalar:
                n0, n1 = cnt[c0].tolist()
                m0, m1 = self.mig_bytes.tolist()
                self.mig_bytes[:] = 0
                u0 = min((n0 * scale * 64 + m0) / chunk_s / bw0, 0.95)
                u1 = min((n1 * scale * 64 + m1) / chunk_s / bw1, 0.95)
                self.lat_sum += float(n0 * (lat0 * (1.0 + u0 / (2.0 * (1.0 - u0))))
                                      + n1 * (lat1 * (1.0 + u1 / (2.0 * (1.0 - u1)))))
                own_n = n0 + n1
                uo = min(own_n * scale * 64 / chunk_s / bw_oo, 0.95)
                self.allfast_sum += float(own_n * lat_oo * (1.0 + uo / (2.0 * (1.0 - uo))))
                h = (n0 if top0 else 0) + (n1 if top1 else 0)
            else:
                h = self.latency(cnt, scale, chunk_s, bw, remote, lat_cpu, lat_own, bw_own,
                                 cpu_nodes)
            self.hits += h
            self.accesses += per_chunk
            bh += h
            ba += per_chunk
            self.last_access[pages] = c

            if track_cpu:
                self.last_cpu[pages] = cpus
            self.interval_pages.append(pages)
            times_j = now_j + offs
            # --- sources and promotion ---
            if pol == "numab2":
                before = int(mach.stats.get("numa_hint_faults", 0))
                pf, tg, _ = mach.hint_fault_arrays(pages, cpus, times_j)
                self.faults += int(mach.stats.get("numa_hint_faults", 0)) - before
                self.promoted_arrays(pf, tg, t0)
            elif pol in ("pghot-default", "pghot-precise", "pghot-v3-abit"):
                if pol == "pghot-v3-abit":
                    self.abit[pages] = True
                    if (t0 // 1_000_000) % p.abit_period_ms == 0:
                        self.abit_scan(now_j)
                else:
                    idx = self.faults_of(pages)
                    self.faults += len(idx)
                    if len(idx):
                        mach.record_batch(pages[idx], cpus[idx], PGHOT_HINT_FAULT,
                                          times_j[idx])
                if (t0 // 1_000_000) % p.kmigrated_ms == 0:
                    for nid, nd in enumerate(m.nodes):
                        if not nd.toptier:
                            pf, tg, _ = mach.kmigrated_arrays(nid, now_j)
                            self.promoted_arrays(pf, tg, t0)
            elif pol == "kpromoted":
                idx = self.hw_samples(per_chunk, int(now_j))
                self.samples += len(idx)
                if len(idx):
                    mach.record_batch(pages[idx], cpus[idx], KPROMOTED_HW_HINTS, times_j[idx])
                self.peak_records = max(self.peak_records, len(mach.krec))
                if (t0 // 1_000_000) % p.kpromoted_ms == 0:
                    for nid in cpu_nodes:
                        self.promoted(mach.promote_pass(nid, now_j), t0)
            elif pol == "chmu":
                slow = pages[~self.top[mem]]
                self.samples += len(slow) >> p.chmu_downsample
                mach.chmu_batch(slow)
                if (t0 // 1_000_000) % p.chmu_epoch_ms == 0:
                    self.promoted(mach.promote_pass(0, now_j), t0)
            self.demote_if_needed(t0)
            if (c + 1) % bins_per == 0:
                self.bin_hits.append(bh)
                self.bin_acc.append(ba)
                bh = ba = 0
            if (c + 1) % max(1, 1000 // p.chunk_ms) == 0:
                self.close_interval()
            if tick and c % 100 == 0:
                tick()
        seconds = time.process_time() - t_start
        series_hit = [h / max(1, a) for h, a in zip(self.bin_hits, self.bin_acc, strict=True)]
        series_t = [(i + 1) * p.bin_ms / 1000 for i in range(len(series_hit))]
        slow_pages = sum(nd.capacity for nd in m.nodes if not nd.toptier)
        meta = metadata_bytes(pol, slow_pages, self.peak_records,
                              mach.config.chmu_hotlist) / (slow_pages * PAGE / GIB)
        mean = self.lat_sum / max(1, self.accesses)
        allfast = self.allfast_sum / max(1, self.accesses)
        return SimResult(
            policy=pol, workload=self.wl.name, accesses=self.accesses,
            fast_tier_hit_ratio=self.hits / max(1, self.accesses), mean_latency_ns=mean,
            allfast_latency_ns=allfast, promotions=self.promotions, demotions=self.demotions,
            ping_pong=self.ping_pong,
            precision=self.prec_hit / self.prec_all if self.prec_all else None,
            recall=self.recall_sum / self.recall_n if self.recall_n else None,
            recovery_s=recovery(series_t, series_hit, self.wl.shift_at, p.duration_s),
            samples=self.samples, hint_faults=self.faults, pte_updates=self.pte_updates,
            metadata_bytes_per_gib=meta, seconds=seconds, series_t=series_t,
            series_hit=series_hit, remote_promotions=self.remote_promotions,
            slowdown_vs_allfast=mean / allfast if allfast else 0.0)


def recovery(ts: list[float], hit: list[float], shift_at: float | None, duration: float
             ) -> float | None:
    """Seconds from the hot-set shift until the hit ratio (per bin) is back within 5 % of its
    mean over the 2 s before the shift: 0.0 when it never fell below that, None without a
    shift or when it does not recover before the run ends."""
    if shift_at is None or not hit:
        return None
    t_shift = shift_at * duration
    h = np.array(hit)
    t = np.array(ts)
    before = h[(t > t_shift - 2) & (t <= t_shift + 1e-9)]
    after = np.flatnonzero(t > t_shift + 1e-9)
    if not len(before) or not len(after):
        return None
    level = 0.95 * float(before.mean())
    low = after[h[after] < level]
    if not len(low):
        return 0.0
    back = after[(after > low[0]) & (h[after] >= level)]
    if not len(back):
        return None
    return float(t[back[0]] - t_shift)


def simulate(policy: str, workload: str | Workload, params: SimParams | None = None,
             machine: Machine | None = None,
             tick: Callable[[], None] | None = None) -> SimResult:
    """One policy on one workload."""
    p = params or SimParams()
    if policy not in POLICIES + EXTRA_POLICIES:
        raise ValueError(f"unknown policy {policy!r} "
                         f"(known: {', '.join(POLICIES + EXTRA_POLICIES)})")
    wl = make(workload, p.footprint, p.seed) if isinstance(workload, str) else workload
    if isinstance(workload, str) and workload.startswith("lackey:"):
        wl.name = workload.split("/")[-1]
    m = machine or (two_socket(wl.footprint) if wl.cpu_nodes == 2 else dram_cxl(wl.footprint))
    return _Run(policy, wl, m, p).run(tick)


def run_matrix(policies: list[str], workloads: list[str], params: SimParams | None = None,
               tick: Callable[[], None] | None = None) -> dict[str, Any]:
    """Every policy on every workload; slowdowns against all-fast and against ``none``."""
    p = params or SimParams()
    results: list[SimResult] = []
    baselines: list[SimResult] = []
    t = time.perf_counter()
    for w in workloads:
        base: SimResult | None = None
        for pol in ["none"] + [x for x in policies if x != "none"]:
            r = simulate(pol, w, p, tick=tick)
            if pol == "none":
                base = r
            if pol in policies:
                results.append(r)
            else:
                baselines.append(r)
            if base is not None and r.mean_latency_ns:
                r.speedup_vs_none = base.mean_latency_ns / r.mean_latency_ns
    wall = time.perf_counter() - t
    # CPU seconds (the machine may be shared); the ``none`` baseline runs count too.
    total = sum(r.accesses for r in results) + sum(b.accesses for b in baselines)
    sim_time = sum(r.seconds for r in results) + sum(b.seconds for b in baselines)
    return {"accesses_per_s": total / sim_time if sim_time else 0.0, "wall_s": wall,
            "results": results}
