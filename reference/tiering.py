"""The TIER trackers and promoters on flat numpy arrays, with batch (vectorised) record updates.

``TierMachine(config)`` has the spec's operations (``record_access``, ``numa_scan``,
``promote_pass``, ``demote``) plus batch forms the simulator uses (``record_batch``,
``hint_fault_batch``, ``demote_batch``); ``abstract()`` returns the spec's immutable
:class:`spec.tier_state.TierState` so the lockstep fuzzer can compare them after every step.
The spec is imported for vocabulary only (config, state classes, constants); the behaviour is
written again here, on arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spec.tier_common import CHMU_DEVICE, NUMA_NO_NODE, PGHOT_HINT_FAULT
from spec.tier_state import KRecord, Pgdat, TierConfig, TierError, TierState

U64 = (1 << 64) - 1
GOLDEN_RATIO_64 = 0x61C8864680B583EB

#: (bits, freq shift, freq width, time shift, time width, ready bit, nid shift, nid width,
#: time bucket shift) per record format.
FORMATS = {
    "pghot-v6-default": (8, 0, 2, 2, 5, 7, None, 0, 7),
    "pghot-v6-precise": (32, 10, 3, 13, 14, 31, 0, 10, 0),
    "pghot-v3": (64, 0, 3, 13, 19, 63, 3, 10, 0),
}
DTYPES = {8: np.uint8, 32: np.uint32, 64: np.uint64}


def _msecs(j: Any, hz: int) -> Any:
    return j * (1000 // hz)


class TierMachine:
    """Mutable tiered machine for one variant."""

    def __init__(self, config: TierConfig) -> None:
        self.config = cfg = config
        n = cfg.nr_pages
        self.node_of = np.array(cfg.placement, dtype=np.int16)
        self.nr_nodes = len(cfg.nodes)
        self.toptier = np.array([nd.toptier for nd in cfg.nodes], dtype=bool)
        self.capacity = np.array([nd.capacity for nd in cfg.nodes], dtype=np.int64)
        self.used = np.bincount(self.node_of, minlength=self.nr_nodes).astype(np.int64)
        self.stats: dict[str, int] = {}
        self.pgdat = [dict(nbp_rl_start=0, nbp_rl_nr_cand=0, nbp_th_start=0, nbp_th_nr_cand=0,
                           nbp_threshold=0, pgpromote_candidate=0, pgpromote_candidate_nrl=0,
                           pgpromote_success=0, pgdemote=0, slot_promoted=0)
                      for _ in cfg.nodes]
        self.fmt = FORMATS.get(cfg.variant)
        if self.fmt is not None:
            self.rec = np.zeros(n, dtype=DTYPES[self.fmt[0]])
        self.krec: dict[int, tuple[int, int, int, int, int]] = {}
        self.seq = 0
        self.heaps: list[set[int]] = [set() for _ in cfg.nodes] \
            if cfg.variant == "pghot-v1" else []
        self.hot_sections: set[int] = set()
        self.activate: set[int] = set()
        self.prot_none = np.zeros(n, dtype=bool)
        self.access_time = np.zeros(n, dtype=np.int64)
        self.stamped = np.zeros(n, dtype=bool)
        self.counters: dict[int, int] = {}
        self.hotlist: list[int] = []
        self.chmu_seen = 0
        self.chmu_overflow = 0
        self.window_ms = cfg.window_ms
        self.window_j = -(-cfg.window_ms * cfg.hz // 1000)

    # --- helpers ---------------------------------------------------------------------------

    def _count(self, name: str, n: int = 1) -> None:
        if n:
            self.stats[name] = self.stats.get(name, 0) + int(n)

    def _tracked(self, nodes: Any) -> Any:
        """Which of these nodes' pages a tracker records: the lower-tier ones."""
        return ~self.toptier[nodes]

    def _move(self, pfn: int, target: int) -> None:
        self.used[self.node_of[pfn]] -= 1
        self.used[target] += 1
        self.node_of[pfn] = target

    def _balanced(self, target: int) -> bool:
        nd = self.config.nodes[target]
        return bool(nd.capacity - self.used[target] > nd.high_wmark + 1)

    def _promote_now(self, pfn: int, target: int) -> bool:
        if not self._balanced(target):
            self._count("pgmigrate_fail")
            return False
        self._move(pfn, target)
        self.pgdat[target]["pgpromote_success"] += 1
        self._count("pgpromote_success")
        return True

    def _check(self, pfn: int, nid: int) -> None:
        if not 0 <= pfn < self.config.nr_pages:
            raise TierError(f"page {pfn} does not exist")
        if nid != NUMA_NO_NODE and not 0 <= nid < self.nr_nodes:
            raise TierError(f"node {nid} does not exist")

    def _enough(self, nid: int) -> bool:
        cfg = self.config
        floor = (1 << (30 - cfg.page_shift)) if cfg.enough_floor_pages is None \
            else cfg.enough_floor_pages
        enough = max(floor, int(self.capacity[nid]) >> 4)
        free = int(self.capacity[nid] - self.used[nid])
        return free > cfg.nodes[nid].high_wmark + enough

    def _throttle(self, dst: int, now: int, ref_th: int, period: int, latency: int
                  ) -> tuple[bool, str]:
        cfg = self.config
        p = self.pgdat[dst]
        now_ms = _msecs(now, cfg.hz) & 0xFFFFFFFF
        if self._enough(dst):
            p["nbp_threshold"] = 0
            p["pgpromote_candidate_nrl"] += 1
            return True, "nrl"
        rate = cfg.promote_rate_limit_MBps << (20 - cfg.page_shift)
        if (now_ms - p["nbp_th_start"]) & 0xFFFFFFFF > period:
            p["nbp_th_start"] = now_ms
            ref_cand = rate * period // 1000
            diff = (p["pgpromote_candidate"] - p["nbp_th_nr_cand"]) & U64
            unit = ref_th * 2 // 16
            th = p["nbp_threshold"] or ref_th
            if diff > ref_cand * 11 // 10:
                th = max((th - unit) & 0xFFFFFFFF, unit)
            elif diff < ref_cand * 9 // 10:
                th = min(th + unit, ref_th * 2)
            p["nbp_th_nr_cand"] = p["pgpromote_candidate"]
            p["nbp_threshold"] = th
        th = p["nbp_threshold"] or ref_th
        if latency >= th:
            return False, "cold"
        p["pgpromote_candidate"] += 1
        if (now_ms - p["nbp_rl_start"]) & 0xFFFFFFFF > 1000:
            p["nbp_rl_start"] = now_ms
            p["nbp_rl_nr_cand"] = p["pgpromote_candidate"]
            p["slot_promoted"] = 0
        if p["pgpromote_candidate"] - p["nbp_rl_nr_cand"] >= rate:
            return False, "throttled"
        return True, "ok"

    # --- record_access ---------------------------------------------------------------------

    def record_access(self, pfn: int, nid: int, src: int, now: int) -> Any:
        v = self.config.variant
        self._check(pfn, nid)
        if v == "numab2":
            return self.hint_fault_batch(np.array([pfn]), np.array([nid]), np.array([now]))
        if v in FORMATS:
            if nid != NUMA_NO_NODE and not 0 <= nid < self.nr_nodes:
                return -22
            if src not in self.config.sources():
                return -22
            self.record_batch(np.array([pfn]), np.array([nid]), src, np.array([now]))
            return 0
        if v == "chmu":
            if src != CHMU_DEVICE:
                return -22
            self.chmu_batch(np.array([pfn]))
            return 0
        if v == "pghot-v1" and src not in self.config.sources():
            return -22
        self.record_batch(np.array([pfn]), np.array([nid]), src, np.array([now]))
        return 0

    def record_batch(self, pfns: np.ndarray, nids: np.ndarray, src: int,
                     times: np.ndarray) -> None:
        """Many accesses from one source, in time order."""
        v = self.config.variant
        if v in FORMATS:
            self._pghot_batch(pfns, nids, src, times)
        elif v == "kpromoted-v0":
            self._kpromoted_batch(pfns, nids, src, times)
        elif v == "pghot-v1":
            self._v1_batch(pfns, nids, times)
        elif v == "chmu":
            self.chmu_batch(pfns)
        else:
            raise TierError(f"{v} has no record_batch (numab2 uses hint_fault_batch)")

    def _pghot_batch(self, pfns: np.ndarray, nids: np.ndarray, src: int,
                     times: np.ndarray) -> None:
        cfg = self.config
        assert self.fmt is not None
        _bits, fs, fw, ts, tw, rb, ns, nw, bshift = self.fmt
        self._count("pghot_recorded_hintfaults" if src == PGHOT_HINT_FAULT
                    else "pghot_recorded_hwhints", len(pfns))
        pfns = np.asarray(pfns, dtype=np.int64)
        nids = np.asarray(nids, dtype=np.int64)
        times = np.asarray(times, dtype=np.int64)
        src_nid = self.node_of[pfns]
        keep = (src_nid != nids) & self._tracked(src_nid)
        if not keep.all():
            pfns, nids, times = pfns[keep], nids[keep], times[keep]
        m = len(pfns)
        self._count("pghot_recorded_accesses", m)
        if not m:
            return
        order = np.argsort(pfns, kind="stable")
        p, t, nd = pfns[order], times[order], nids[order]
        nd = np.where(nd == NUMA_NO_NODE, cfg.pghot_target_nid, nd)
        first = np.empty(m, dtype=bool)
        first[0] = True
        first[1:] = p[1:] != p[:-1]
        stored = self.rec[p].astype(np.uint64).astype(np.int64) if _bits < 64 else \
            self.rec[p].view(np.int64)
        fmask, tmask = (1 << fw) - 1, (1 << tw) - 1
        stored_freq = (stored >> fs) & fmask
        stored_time = (stored >> ts) & tmask
        stamp = (t >> bshift) & tmask
        prev_stamp = np.empty(m, dtype=np.int64)
        prev_stamp[1:] = stamp[:-1]
        old_time = np.where(first, stored_time, prev_stamp)
        if bshift:
            bm = tmask << bshift
            lat = ((t & bm) - (old_time << bshift)) & bm
        else:
            lat = (t - old_time) & tmask
        new_window = _msecs(lat, cfg.hz) > self.window_ms
        idx = np.arange(m)
        starts = first | new_window
        start_idx = np.maximum.accumulate(np.where(starts, idx, 0))
        base = np.where(new_window, 1, np.minimum(stored_freq + 1, fmask))[start_idx]
        freq = np.minimum(base + (idx - start_idx), fmask)
        hot = freq >= cfg.freq_threshold
        stored_ready = ((stored >> rb) & 1).astype(bool)
        firsts = np.flatnonzero(first)
        any_hot = np.logical_or.reduceat(hot, firsts)
        last = np.empty(m, dtype=bool)
        last[-1] = True
        last[:-1] = first[1:]
        lasts = np.flatnonzero(last)
        ready = any_hot | stored_ready[firsts]
        word = (freq[lasts] << fs) | (stamp[lasts] << ts)
        if ns is not None:
            word |= (nd[lasts] & ((1 << nw) - 1)) << ns
        word = word.astype(np.uint64)
        if rb == 63:
            word |= ready.astype(np.uint64) << np.uint64(63)
        else:
            word |= (ready.astype(np.uint64) << np.uint64(rb))
        pages = p[lasts]
        self.rec[pages] = word.astype(self.rec.dtype)
        if ready.any():
            rp = pages[ready]
            self.hot_sections.update(np.unique(rp // cfg.pages_per_section).tolist())
            self.activate.update(np.unique(self.node_of[rp]).tolist())

    def _kpromoted_batch(self, pfns: np.ndarray, nids: np.ndarray, src: int,
                         times: np.ndarray) -> None:
        cfg = self.config
        self._count("kpromoted_recorded_accesses", len(pfns))
        if src in (0, 1):
            self._count(("kpromoted_record_hwhints", "kpromoted_record_pgtscans")[src], len(pfns))
        top = ~self._tracked(self.node_of[np.asarray(pfns, dtype=np.int64)])
        self._count("kpromoted_record_toptier", int(top.sum()))
        krec = self.krec
        w = self.window_j
        posted = cfg.kpromoted_as_posted
        for pfn, nid, now in zip(np.asarray(pfns)[~top].tolist(), np.asarray(nids)[~top].tolist(),
                                 np.asarray(times)[~top].tolist(), strict=True):
            r = krec.get(pfn)
            if r is None:
                lu, f, seq = now, 1, self.seq
                self.seq += 1
                self._count("kpromoted_record_added")
            else:
                lu, f, _, _, seq = r
                self._count("kpromoted_record_exists")
            diff = ((lu - now) if posted else (now - lu)) & U64
            if diff > w:
                f, lu = 1, now
            else:
                f += 1
            krec[pfn] = (lu, f, now, 1 if nid == NUMA_NO_NODE else nid, seq)

    def _v1_batch(self, pfns: np.ndarray, nids: np.ndarray, times: np.ndarray) -> None:
        cfg = self.config
        lower = int(sum(nd.capacity for nd in cfg.nodes if not nd.toptier))
        cap = lower * cfg.hash_pct // 100 * cfg.heap_pct // 100
        for pfn, nid, now in zip(np.asarray(pfns).tolist(), np.asarray(nids).tolist(),
                                 np.asarray(times).tolist(), strict=True):
            self._count("pghot_recorded_accesses")
            if not self._tracked(self.node_of[pfn]):
                continue
            r = self.krec.get(pfn)
            if r is None:
                self.krec[pfn] = (now, 1, now, 0 if nid == NUMA_NO_NODE else nid, self.seq)
                self.seq += 1
                self._count("pghot_records_hash")
                continue
            lu, f, _, hn, seq = r
            reset = ((now - lu) & U64) > self.window_j or (nid != NUMA_NO_NODE and hn != nid)
            f = 1 if reset else f + 1
            hn = 0 if nid == NUMA_NO_NODE else nid
            self.krec[pfn] = (now, f, now, hn, seq)
            heap = self.heaps[hn]
            if pfn in heap:
                if f < 2:
                    heap.discard(pfn)
            elif f >= 2 and len(heap) < cap:
                heap.add(pfn)
                self._count("pghot_records_heap")

    def chmu_batch(self, pfns: np.ndarray) -> None:
        cfg = self.config
        pf = np.asarray(pfns, dtype=np.int64)
        pf = pf[self._tracked(self.node_of[pf])]
        if not len(pf):
            return
        k = cfg.chmu_downsample
        seen = self.chmu_seen + np.arange(len(pf))
        self.chmu_seen += len(pf)
        if k:
            pf = pf[(seen & ((1 << k) - 1)) == 0]
        cmax = (1 << cfg.chmu_counter_bits) - 1
        ctr = self.counters
        for unit in (pf >> cfg.chmu_unit_order).tolist():
            c = ctr.get(unit)
            if c is not None:
                ctr[unit] = c + 1 if c < cmax else c
            elif len(ctr) < cfg.chmu_counters:
                ctr[unit] = 1
            else:
                self._count("chmu_untracked")
                continue
            if not cfg.chmu_epoch_mode and ctr[unit] >= cfg.chmu_threshold:
                del ctr[unit]
                self._chmu_append(unit)

    def _chmu_append(self, unit: int) -> None:
        if len(self.hotlist) < self.config.chmu_hotlist:
            self.hotlist.append(unit)
        else:
            self.chmu_overflow += 1

    # --- NUMA balancing ----------------------------------------------------------------------

    def numa_scan(self, pfns: Any, now: int) -> None:
        if self.config.variant != "numab2":
            raise TierError("numa_scan models NUMA-balancing tiering mode (variant numab2)")
        pf = np.asarray(pfns, dtype=np.int64)
        if len(pf) and (pf.min() < 0 or pf.max() >= self.config.nr_pages):
            raise TierError("numa_scan: page out of range")
        pf = pf[self._tracked(self.node_of[pf])]
        self.prot_none[pf] = True
        self.access_time[pf] = _msecs(now, self.config.hz) & ((1 << self.config.access_time_bits)
                                                             - 1)
        self.stamped[pf] = True
        self._count("numa_pte_updates", len(pf))

    def hint_fault_batch(self, pfns: np.ndarray, nids: np.ndarray, times: np.ndarray
                         ) -> list[tuple[int, int, str]]:
        """Accesses in time order; only PROT_NONE pages fault. Returns the promotions."""
        cfg = self.config
        bits_mask = (1 << cfg.access_time_bits) - 1
        pf = np.asarray(pfns, dtype=np.int64)
        hit = self.prot_none[pf]
        if not hit.any():
            return []
        idx = np.flatnonzero(hit)
        # Only the first access to each PROT_NONE page faults.
        _, first = np.unique(pf[idx], return_index=True)
        idx = idx[np.sort(first)]
        out = []
        for i in idx.tolist():
            pfn, nid, now = int(pf[i]), int(nids[i]), int(times[i])
            self.prot_none[pfn] = False
            self._count("numa_hint_faults")
            src = int(self.node_of[pfn])
            if self.toptier[src] or nid == NUMA_NO_NODE or nid == src:
                continue
            now_ms = _msecs(now, cfg.hz)
            latency = 0
            if not self._enough(nid):
                last = int(self.access_time[pfn]) if self.stamped[pfn] else 0
                self.access_time[pfn] = now_ms & bits_mask
                self.stamped[pfn] = True
                latency = (now_ms - last) & bits_mask
            ok, why = self._throttle(nid, now, cfg.hot_threshold_ms, cfg.scan_period_max_ms,
                                     latency)
            if ok and self._promote_now(pfn, nid):
                if why == "ok":
                    self.pgdat[nid]["slot_promoted"] += 1
                out.append((pfn, nid, why))
        return out

    # --- promotion passes ------------------------------------------------------------------

    def promote_pass(self, nid: int, now: int) -> list[tuple[int, int, str]]:
        v = self.config.variant
        if not 0 <= nid < self.nr_nodes:
            raise TierError(f"node {nid} does not exist")
        if v == "kpromoted-v0":
            return [(p, nid, "ok") for p in self._kpromoted_pass(nid, now)]
        if v == "pghot-v1":
            return [(p, nid, "ok") for p in self._v1_pass(nid, now)]
        if v == "numab2":
            return []
        if v == "chmu":
            return self._chmu_pass(now)
        return self._kmigrated(nid, now)

    def _kpromoted_pass(self, nid: int, now: int) -> list[int]:
        if not self.config.nodes[nid].has_cpu:
            raise TierError(f"node {nid} has no CPUs: no kpromoted thread runs there")
        if not self.krec:
            return []
        pf = np.fromiter(self.krec.keys(), dtype=np.uint64, count=len(self.krec))
        seqs = np.array([r[4] for r in self.krec.values()], dtype=np.int64)
        with np.errstate(over="ignore"):
            bucket = (pf * np.uint64(GOLDEN_RATIO_64)) >> np.uint64(48)
        order = np.lexsort((-seqs, bucket))
        out = []
        w = self.window_j
        for pfn in pf[order].astype(np.int64).tolist():
            lu, f, _rc, hn, _seq = self.krec[pfn]
            if hn != nid:
                continue
            if int(self.node_of[pfn]) == hn:
                why = "kpromoted_mig_right_node"
            elif ((now - lu) & U64) > 2 * w:
                why = "kpromoted_mig_cold_old"
            elif f < 2:
                why = "kpromoted_mig_cold_not_accessed"
            else:
                self._count("kpromoted_mig_candidate")
                if self._promote_now(pfn, nid):
                    self._count("kpromoted_mig_promoted")
                    del self.krec[pfn]
                    out.append(pfn)
                continue
            self._count(why)
            self._count("kpromoted_mig_dropped")
            del self.krec[pfn]
        return out

    def _v1_pass(self, nid: int, now: int) -> list[int]:
        cfg = self.config
        if not (self.toptier[nid] and cfg.nodes[nid].has_cpu):
            raise TierError(f"node {nid}: kpromoted runs on top-tier nodes with CPUs")
        heap = self.heaps[nid]
        batch = []
        for _ in range(1024):
            if not heap:
                break
            top = min(heap, key=lambda p: (-self.krec[p][1], p))
            lu, f, _rc, hn, _seq = self.krec[top]
            if f < 2:
                break
            for h in self.heaps:
                h.discard(top)
            del self.krec[top]
            if int(self.node_of[top]) == hn:
                self._count("kpromoted_right_node")
                continue
            if ((now - lu) & U64) > 2 * self.window_j:
                self._count("kpromoted_cold_old")
                continue
            if self._balanced(nid):
                batch.append(top)
        out = []
        for pfn in reversed(batch):
            if self.used[nid] < self.capacity[nid]:
                self._move(pfn, nid)
                self.pgdat[nid]["pgpromote_success"] += 1
                self._count("pgpromote_success")
                out.append(pfn)
            else:
                self._count("pgmigrate_fail")
        return out

    def _kmigrated(self, nid: int, now: int) -> list[tuple[int, int, str]]:
        cfg = self.config
        assert self.fmt is not None
        _bits, fs, fw, ts, tw, rb, ns, nw, bshift = self.fmt
        if self.toptier[nid]:
            raise TierError(f"node {nid} is top tier: kmigrated runs on lower-tier nodes")
        if nid not in self.activate:
            return []
        self.activate.discard(nid)
        pps = cfg.pages_per_section
        done: list[tuple[int, int, str]] = []
        pending: list[tuple[int, str]] = []
        cur = NUMA_NO_NODE
        tmask = (1 << tw) - 1

        def flush(target: int) -> None:
            for pfn, why in reversed(pending):
                if self.used[target] < self.capacity[target]:
                    self._move(pfn, target)
                    self.pgdat[target]["pgpromote_success"] += 1
                    if why == "ok":
                        self.pgdat[target]["slot_promoted"] += 1
                    self._count("pgpromote_success")
                    done.append((pfn, target, why))
                else:
                    self._count("pgmigrate_fail")
            pending.clear()

        for section in sorted(self.hot_sections):
            lo = section * pps
            if lo >= cfg.nr_pages:
                continue
            self.hot_sections.discard(section)
            hi = min(lo + pps, cfg.nr_pages)
            words = self.rec[lo:hi]
            cand = np.flatnonzero(((words >> rb) & 1).astype(bool)
                                  & (self.node_of[lo:hi] == nid)) + lo
            for pfn in cand.tolist():
                word = int(self.rec[pfn])
                self.rec[pfn] = 0
                target = cfg.pghot_target_nid if ns is None else (word >> ns) & ((1 << nw) - 1)
                if int(self.node_of[pfn]) == target:
                    continue
                time = (word >> ts) & tmask
                if bshift:
                    bm = tmask << bshift
                    lat = ((now & bm) - (time << bshift)) & bm
                else:
                    lat = (now - time) & tmask
                ok, why = self._throttle(target, now, self.window_ms, 60000,
                                         _msecs(lat, cfg.hz))
                if not ok:
                    continue
                if not self._balanced(target):
                    self._count("pgmigrate_fail")
                    continue
                if cur == NUMA_NO_NODE:
                    cur = target
                if cur != target:
                    flush(cur)
                    cur = target
                pending.append((pfn, why))
                if len(pending) > cfg.kmigrated_batch_nr:
                    flush(cur)
        if pending:
            flush(cur)
        return done

    def _chmu_pass(self, now: int) -> list[tuple[int, int, str]]:
        cfg = self.config
        if cfg.chmu_epoch_mode:
            for unit in sorted(self.counters):
                if self.counters[unit] >= cfg.chmu_threshold:
                    self._chmu_append(unit)
            self.counters.clear()
        target = cfg.pghot_target_nid
        out = []
        n = 1 << cfg.chmu_unit_order
        for unit in self.hotlist:
            for pfn in range(unit * n, min(unit * n + n, cfg.nr_pages)):
                if self.toptier[self.node_of[pfn]]:
                    continue
                ok, why = self._throttle(target, now, cfg.hot_threshold_ms,
                                         cfg.scan_period_max_ms, 0)
                if ok and self._promote_now(pfn, target):
                    if why == "ok":
                        self.pgdat[target]["slot_promoted"] += 1
                    out.append((pfn, target, why))
        self.hotlist.clear()
        return out

    # --- demotion --------------------------------------------------------------------------

    def demote(self, pfn: int) -> int | None:
        self._check(pfn, NUMA_NO_NODE)
        src = int(self.node_of[pfn])
        if not self.toptier[src]:
            raise TierError(f"page {pfn} is on lower-tier node {src}: nothing to demote")
        for nid in range(self.nr_nodes):
            if not self.toptier[nid] and self.used[nid] < self.capacity[nid]:
                self._move(pfn, nid)
                self.pgdat[src]["pgdemote"] += 1
                self._count("pgdemote_kswapd")
                return nid
        return None

    def demote_batch(self, pfns: np.ndarray) -> int:
        """Demote many top-tier pages at once (same target rule); returns how many moved."""
        moved = 0
        for pfn in np.asarray(pfns, dtype=np.int64).tolist():
            if self.demote(pfn) is None:
                break
            moved += 1
        return moved

    # --- abstraction -----------------------------------------------------------------------

    def abstract(self) -> TierState:
        cfg = self.config
        if self.fmt is not None:
            nz = np.flatnonzero(self.rec)
            records: tuple[tuple[int, Any], ...] = tuple(
                (int(p), int(self.rec[p])) for p in nz)
        else:
            records = tuple(sorted((p, KRecord(lu, f, rc, hn, sq))
                                   for p, (lu, f, rc, hn, sq) in self.krec.items()))
        pn = np.flatnonzero(self.prot_none)
        st = np.flatnonzero(self.stamped)
        return TierState(
            config=cfg, node_of=tuple(int(x) for x in self.node_of), records=records,
            seq=self.seq, heaps=tuple(frozenset(h) for h in self.heaps),
            hot_sections=frozenset(self.hot_sections), kmigrated_activate=frozenset(self.activate),
            pgdat=tuple(Pgdat(**p) for p in self.pgdat),
            access_time=tuple((int(p), int(self.access_time[p])) for p in st),
            prot_none=frozenset(int(p) for p in pn),
            chmu_counters=tuple(sorted(self.counters.items())), chmu_hotlist=tuple(self.hotlist),
            chmu_seen=self.chmu_seen, chmu_overflow=self.chmu_overflow,
            stats=tuple(sorted((k, v) for k, v in self.stats.items() if v)))
