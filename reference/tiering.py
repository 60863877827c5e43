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


#: the value of every entry of a :func:`first_occurrences` scratch array between calls.
FIRST_UNSEEN = np.iinfo(np.int64).max


def first_occurrences(values: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """Mask of the first occurrence of each value in ``values`` (what
    ``np.unique(values, return_index=True)`` finds, without sorting): ``scratch`` has an
    entry per possible value, all FIRST_UNSEEN, and is left so."""
    pos = np.arange(len(values))
    np.minimum.at(scratch, values, pos)
    first = scratch[values] == pos
    scratch[values] = FIRST_UNSEEN
    return first


def _msecs(j: Any, hz: int) -> Any:
    return j * (1000 // hz)


def _adjust_threshold(p: dict[str, int], now_ms: int, ref_th: int, period: int, rate: int
                      ) -> None:
    """Once per ``period`` ms: move the hot threshold by ref_th/8 towards the rate limit."""
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
            if cfg.heap_tracker else []
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
        self._first: np.ndarray | None = None
        self.window_j = -(-cfg.window_ms * cfg.hz // 1000)

    # --- helpers ---------------------------------------------------------------------------

    def _scratch(self) -> np.ndarray:
        """A per-page int64 array holding FIRST_UNSEEN (see :func:`first_occurrences`)."""
        if self._first is None:
            self._first = np.full(self.config.nr_pages, FIRST_UNSEEN, dtype=np.int64)
        return self._first

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
        _adjust_threshold(p, now_ms, ref_th, period, rate)
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
        if self.config.heap_tracker and src not in self.config.sources():
            self._count("pghot_recorded_accesses")
            return -22
        self.record_batch(np.array([pfn]), np.array([nid]), src, np.array([now]))
        return 0

    def access_batch(self, pfns: Any, nids: Any, src: int, times: Any) -> Any:
        """Accesses in time order from one source: NUMA hint faults for numab2 (returns the
        promotions), record updates otherwise (returns None)."""
        pf = np.asarray(pfns, dtype=np.int64)
        nd = np.asarray(nids, dtype=np.int64)
        tm = np.asarray(times, dtype=np.int64)
        if self.config.variant == "numab2":
            return self.hint_fault_batch(pf, nd, tm)
        if src in self.config.sources():
            self.record_batch(pf, nd, src, tm)
        elif self.config.variant == "kpromoted-v0":
            self.record_batch(pf, nd, src, tm)
        return None

    def record_batch(self, pfns: np.ndarray, nids: np.ndarray, src: int,
                     times: np.ndarray) -> None:
        """Many accesses from one source, in time order."""
        v = self.config.variant
        if v in FORMATS:
            self._pghot_batch(pfns, nids, src, times)
        elif v == "kpromoted-v0":
            self._kpromoted_batch(pfns, nids, src, times)
        elif self.config.heap_tracker:
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
        v2 = cfg.variant == "pghot-v2"
        for pfn, nid, now in zip(np.asarray(pfns).tolist(), np.asarray(nids).tolist(),
                                 np.asarray(times).tolist(), strict=True):
            self._count("pghot_recorded_accesses")
            if not self._tracked(self.node_of[pfn]):
                continue
            cur = now & 0x7FFFF if v2 else now
            r = self.krec.get(pfn)
            if r is None:
                self.krec[pfn] = (cur, 1, cur, 0 if nid == NUMA_NO_NODE else nid, self.seq)
                self.seq += 1
                self._count("pghot_records_hash")
                continue
            lu, f, _, hn, seq = r
            reset = ((cur - lu) & (0xFFFFFFFF if v2 else U64)) > self.window_j \
                or (nid != NUMA_NO_NODE and hn != nid)
            if reset:
                f = 1
            elif v2:
                f = (f + 1) & 7
            else:
                f += 1
            hn = 0 if nid == NUMA_NO_NODE else nid
            self.krec[pfn] = (cur, f, cur, hn, seq)
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
        """Accesses in time order; only PROT_NONE pages fault. Returns the promotions.

        Targets are independent (each has its own pgdat and free pages), so faults are
        grouped per target; within a target the bypass prefix and, when no threshold period
        or rate-limit slot ends inside the batch and the rate limit cannot bind, the rest are
        decided with array operations; otherwise one fault at a time.
        """
        pfn_a, tgt_a, code_a = self.hint_fault_arrays(pfns, nids, times)
        why = ("", "ok", "nrl")
        return [(int(a), int(b), why[c]) for a, b, c in zip(pfn_a.tolist(), tgt_a.tolist(),
                                                           code_a.tolist(), strict=True)]

    def hint_fault_arrays(self, pfns: Any, nids: Any, times: Any
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``hint_fault_batch`` returning (pfns, targets, codes: 1 ok, 2 bypass) arrays."""
        pf = np.asarray(pfns, dtype=np.int64)
        hit = self.prot_none[pf]
        empty = np.zeros(0, dtype=np.int64)
        if not hit.any():
            return empty, empty, empty
        idx = np.flatnonzero(hit)
        # Only the first access to each PROT_NONE page faults.
        idx = idx[first_occurrences(pf[idx], self._scratch())]
        fp = pf[idx]
        fn = np.asarray(nids, dtype=np.int64)[idx]
        ft = np.asarray(times, dtype=np.int64)[idx]
        self.prot_none[fp] = False
        self._count("numa_hint_faults", len(idx))
        src = self.node_of[fp].astype(np.int64)
        ok = ~self.toptier[src] & (fn != NUMA_NO_NODE) & (fn != src)
        pos = np.flatnonzero(ok)
        parts = []
        fpos = fn[pos]
        if len(fpos) and fpos.min() == fpos.max():
            q, g, c = self._faults_to(int(fpos[0]), fp[pos], ft[pos], pos)
            if len(q) < 2 or bool((q[1:] > q[:-1]).all()):
                return g, np.full(len(q), int(fpos[0]), dtype=np.int64), c
            parts.append((q, g, np.full(len(q), int(fpos[0]), dtype=np.int64), c))
        else:
            for t in np.unique(fpos).tolist():
                sel = pos[fpos == t]
                q, g, c = self._faults_to(int(t), fp[sel], ft[sel], sel)
                parts.append((q, g, np.full(len(q), t, dtype=np.int64), c))
        if not parts:
            return empty, empty, empty
        q_all = np.concatenate([x[0] for x in parts])
        order = np.argsort(q_all, kind="stable")
        return tuple(np.concatenate([x[i] for x in parts])[order]  # type: ignore[return-value]
                     for i in (1, 2, 3))

    def _faults_to(self, t: int, pages: np.ndarray, times: np.ndarray, pos: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Faults to target ``t`` in time order: (positions, pfns, codes) of the promoted."""
        cfg = self.config
        p = self.pgdat[t]
        high = cfg.nodes[t].high_wmark
        floor = (1 << (30 - cfg.page_shift)) if cfg.enough_floor_pages is None \
            else cfg.enough_floor_pages
        enough = max(floor, int(self.capacity[t]) >> 4)
        free = int(self.capacity[t] - self.used[t])
        k = len(pages)
        oq: list[np.ndarray] = []
        og: list[np.ndarray] = []
        oc: list[np.ndarray] = []

        def done() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            if not oq:
                z = np.zeros(0, dtype=np.int64)
                return z, z, z
            return np.concatenate(oq), np.concatenate(og), np.concatenate(oc)

        # bypass prefix: fault i bypasses while free (less the i promotions before it) is above
        # high + enough; with enough == 0 a failed migration leaves free as it was.
        room = max(0, free - high - 1)
        nb = min(k, max(0, free - high - enough))
        if enough == 0 and nb > room:
            nb = k
        if nb:
            p["nbp_threshold"] = 0
            p["pgpromote_candidate_nrl"] += nb
            moved = min(nb, room)
            self._promote_many(pages[:moved], t)
            self._count("pgmigrate_fail", nb - moved)
            oq.append(pos[:moved])
            og.append(pages[:moved])
            oc.append(np.full(moved, 2, dtype=np.int64))
        if nb == k:
            return done()
        rest, rtimes, rpos = pages[nb:], times[nb:], pos[nb:]
        bits_mask = (1 << cfg.access_time_bits) - 1
        now_ms = rtimes * (1000 // cfg.hz)
        if not self._quiet(t, now_ms):
            # Runs that need no fault-by-fault treatment go in one go: the longest prefix
            # that is quiet (through _faults_to again, from the state reached) and leading
            # cold faults (only stamped); otherwise 1, 2, 4, ... faults one at a time.
            n, i, step = len(rest), 0, 1
            while i < n:
                k = self._quiet_prefix(t, now_ms[i:])
                if k:
                    q, g, c = self._faults_to(t, rest[i:i + k], rtimes[i:i + k],
                                              rpos[i:i + k])
                    oq.append(q)
                    og.append(g)
                    oc.append(c)
                    i, step = i + k, 1
                    continue
                k = self._cold_prefix(t, rest[i:], now_ms[i:])
                if k:
                    i, step = i + k, 1
                    continue
                j = min(n, i + step)
                for q1, pfn, now in zip(rpos[i:j].tolist(), rest[i:j].tolist(),
                                        rtimes[i:j].tolist(), strict=True):
                    got = self._fault_one(pfn, t, now)
                    if got is not None:
                        oq.append(np.array([q1]))
                        og.append(np.array([pfn]))
                        oc.append(np.array([1 if got == "ok" else 2]))
                i, step = j, 2 * step
            return done()
        last = np.where(self.stamped[rest], self.access_time[rest], 0)
        self.access_time[rest] = now_ms & bits_mask
        self.stamped[rest] = True
        lat = (now_ms - last) & bits_mask
        th = p["nbp_threshold"] or cfg.hot_threshold_ms
        passing = np.flatnonzero(lat < th)
        p["pgpromote_candidate"] += len(passing)
        room = max(0, int(self.capacity[t] - self.used[t]) - high - 1)
        moved = min(len(passing), room)
        self._promote_many(rest[passing[:moved]], t)
        self._count("pgmigrate_fail", len(passing) - moved)
        p["slot_promoted"] += moved
        oq.append(rpos[passing[:moved]])
        og.append(rest[passing[:moved]])
        oc.append(np.ones(moved, dtype=np.int64))
        return done()

    def _cold_prefix(self, t: int, pages: np.ndarray, now_ms: np.ndarray) -> int:
        """Faults to target ``t`` (distinct pages, in time order) that ``_fault_one`` would
        only stamp: not enough free pages, no threshold period ending, latency at or above
        the threshold. Stamps them as it would and returns how many lead the batch."""
        cfg = self.config
        if self._enough(t):
            return 0
        p = self.pgdat[t]
        m32 = 0xFFFFFFFF
        bits_mask = (1 << cfg.access_time_bits) - 1
        last = np.where(self.stamped[pages], self.access_time[pages], 0)
        lat = (now_ms - last) & bits_mask
        th = p["nbp_threshold"] or cfg.hot_threshold_ms
        stop = ((now_ms & m32) - p["nbp_th_start"]) & m32 > cfg.scan_period_max_ms
        stop |= lat < th
        k = int(np.argmax(stop)) if stop.any() else len(pages)
        if k:
            self.access_time[pages[:k]] = now_ms[:k] & bits_mask
            self.stamped[pages[:k]] = True
        return k

    def _quiet_prefix(self, t: int, now_ms: np.ndarray) -> int:
        """How many of these faults (times in ms, nondecreasing) from the first form a
        batch ``_quiet`` accepts (0 when the first fault alone is not quiet)."""
        cfg = self.config
        p = self.pgdat[t]
        rate = cfg.promote_rate_limit_MBps << (20 - cfg.page_shift)
        m32 = 0xFFFFFFFF
        cap = min(len(now_ms), rate - 1 - p["pgpromote_candidate"] + p["nbp_rl_nr_cand"])
        if cap <= 0:
            return 0
        ms = now_ms[:cap] & m32
        ok = ((ms - p["nbp_th_start"]) & m32 <= cfg.scan_period_max_ms)
        ok &= (ms - p["nbp_rl_start"]) & m32 <= 1000
        k = cap if ok.all() else int(np.argmin(ok))
        # the prefix must be quiet as a whole (it is when every time in it is)
        return k if k and self._quiet(t, now_ms[:k]) else 0

    def _quiet(self, t: int, now_ms: np.ndarray) -> bool:
        """No threshold period and no rate-limit slot of target ``t`` ends at these fault
        times (ms), and the rate limit cannot bind on this many candidates."""
        cfg = self.config
        p = self.pgdat[t]
        rate = cfg.promote_rate_limit_MBps << (20 - cfg.page_shift)
        m32 = 0xFFFFFFFF
        if p["pgpromote_candidate"] + len(now_ms) - p["nbp_rl_nr_cand"] >= rate:
            return False
        ms = now_ms & m32
        return bool(((ms - p["nbp_th_start"]) & m32 <= cfg.scan_period_max_ms).all()
                    and ((ms - p["nbp_rl_start"]) & m32 <= 1000).all())

    def _promote_many(self, pages: np.ndarray, t: int) -> None:
        if not len(pages):
            return
        from_ = self.node_of[pages].astype(np.int64)
        self.used -= np.bincount(from_, minlength=self.nr_nodes)
        self.used[t] += len(pages)
        self.node_of[pages] = t
        self.pgdat[t]["pgpromote_success"] += len(pages)
        self._count("pgpromote_success", len(pages))

    def _fault_one(self, pfn: int, nid: int, now: int) -> str | None:
        cfg = self.config
        bits_mask = (1 << cfg.access_time_bits) - 1
        now_ms = _msecs(now, cfg.hz)
        latency = 0
        if not self._enough(nid):
            last = int(self.access_time[pfn]) if self.stamped[pfn] else 0
            self.access_time[pfn] = now_ms & bits_mask
            self.stamped[pfn] = True
            latency = (now_ms - last) & bits_mask
        ok, why = self._throttle(nid, now, cfg.hot_threshold_ms, cfg.scan_period_max_ms, latency)
        if ok and self._promote_now(pfn, nid):
            if why == "ok":
                self.pgdat[nid]["slot_promoted"] += 1
            return why
        return None

    # --- promotion passes ------------------------------------------------------------------

    def promote_pass(self, nid: int, now: int) -> list[tuple[int, int, str]]:
        v = self.config.variant
        if not 0 <= nid < self.nr_nodes:
            raise TierError(f"node {nid} does not exist")
        if v == "kpromoted-v0":
            return [(p, nid, "ok") for p in self._kpromoted_pass(nid, now)]
        if self.config.heap_tracker:
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
        w2 = 2 * self.window_j
        krec = self.krec
        pfns = pf[order].astype(np.int64)
        # a promotion changes only its own page's node: the nodes can be read up front.
        nodes = self.node_of[pfns].tolist()
        right = old = idle = cand = fail = 0
        full = False
        for pfn, node in zip(pfns.tolist(), nodes, strict=True):
            lu, f, _rc, hn, _seq = krec[pfn]
            if hn != nid:
                continue
            if node == hn:
                right += 1
            elif ((now - lu) & U64) > w2:
                old += 1
            elif f < 2:
                idle += 1
            else:
                cand += 1
                # _promote_now, with its counters summed below; once the target is not
                # balanced it stays so for the rest of the pass (nothing frees pages in it).
                if not full and self._balanced(nid):
                    self._move(pfn, nid)
                    self.pgdat[nid]["pgpromote_success"] += 1
                    del krec[pfn]
                    out.append(pfn)
                else:
                    full = True
                    fail += 1
                continue
            del krec[pfn]
        self._count("kpromoted_mig_candidate", cand)
        self._count("pgmigrate_fail", fail)
        self._count("pgpromote_success", len(out))
        self._count("kpromoted_mig_promoted", len(out))
        self._count("kpromoted_mig_right_node", right)
        self._count("kpromoted_mig_cold_old", old)
        self._count("kpromoted_mig_cold_not_accessed", idle)
        self._count("kpromoted_mig_dropped", right + old + idle)
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
            if cfg.variant == "pghot-v1" and ((now - lu) & U64) > 2 * self.window_j:
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

    def _decide(self, t: int, lat: np.ndarray, now: int, ref_th: int, period: int, room: int,
                balanced: bool) -> tuple[np.ndarray, int]:
        """The throttle for consecutive candidates of target ``t`` while its free pages stay
        constant, vectorised. Returns the codes of the consumed prefix (0 rejected, 1 ok,
        2 bypass) and its length; the prefix ends at the ``room``-th accepted candidate."""
        p = self.pgdat[t]
        n = len(lat)
        if self._enough(t):
            m = min(n, room) if balanced else n
            p["nbp_threshold"] = 0
            p["pgpromote_candidate_nrl"] += m
            if not balanced:
                self._count("pgmigrate_fail", m)
                return np.zeros(m, dtype=np.int8), m
            return np.full(m, 2, dtype=np.int8), m
        cfg = self.config
        now_ms = _msecs(now, cfg.hz) & 0xFFFFFFFF
        rate = cfg.promote_rate_limit_MBps << (20 - cfg.page_shift)
        _adjust_threshold(p, now_ms, ref_th, period, rate)
        th = p["nbp_threshold"] or ref_th
        passing = np.flatnonzero(lat < th)
        codes = np.zeros(n, dtype=np.int8)
        if not len(passing):
            return codes, n
        cand0 = p["pgpromote_candidate"]
        if (now_ms - p["nbp_rl_start"]) & 0xFFFFFFFF > 1000:
            p["nbp_rl_start"] = now_ms
            p["nbp_rl_nr_cand"] = cand0 + 1
            p["slot_promoted"] = 0
        allowed = max(0, rate + p["nbp_rl_nr_cand"] - cand0 - 1)
        ok = passing[:allowed]
        cut = n
        if balanced and len(ok) > room:
            cut = int(ok[room - 1]) + 1
            ok = ok[:room]
        p["pgpromote_candidate"] += int(np.count_nonzero(passing < cut))
        if balanced:
            codes[ok] = 1
        else:
            self._count("pgmigrate_fail", len(ok))
        return codes[:cut], cut

    def _kmigrated(self, nid: int, now: int) -> list[tuple[int, int, str]]:
        pf, tg, code = self.kmigrated_arrays(nid, now)
        why = ("", "ok", "nrl")
        return [(a, b, why[c]) for a, b, c in zip(pf.tolist(), tg.tolist(), code.tolist(),
                                                  strict=True)]

    def kmigrated_arrays(self, nid: int, now: int
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """kmigrated%nid: the promoted (pfns, targets, codes 1 ok / 2 bypass), in order."""
        cfg = self.config
        assert self.fmt is not None
        _bits, fs, fw, ts, tw, rb, ns, nw, bshift = self.fmt
        if self.toptier[nid]:
            raise TierError(f"node {nid} is top tier: kmigrated runs on lower-tier nodes")
        empty = np.zeros(0, dtype=np.int64)
        if nid not in self.activate:
            return empty, empty, empty
        self.activate.discard(nid)
        pps = cfg.pages_per_section
        done: list[tuple[np.ndarray, int, np.ndarray]] = []
        pend_pf: list[np.ndarray] = []
        pend_code: list[np.ndarray] = []
        npend = 0
        cur = NUMA_NO_NODE
        tmask = (1 << tw) - 1
        batch = cfg.kmigrated_batch_nr

        def flush(target: int) -> None:
            # list_add put the newest first: migrate in reverse order while the node has room.
            nonlocal npend
            if not pend_pf:
                return
            pf = np.concatenate(pend_pf)[::-1]
            code = np.concatenate(pend_code)[::-1]
            k = int(max(0, min(len(pf), self.capacity[target] - self.used[target])))
            self._promote_many(pf[:k], target)
            self.pgdat[target]["slot_promoted"] += int(np.count_nonzero(code[:k] == 1))
            self._count("pgmigrate_fail", len(pf) - k)
            done.append((pf[:k], target, code[:k]))
            pend_pf.clear()
            pend_code.clear()
            npend = 0

        parts = []
        for section in sorted(self.hot_sections):
            lo = section * pps
            if lo >= cfg.nr_pages:
                continue
            self.hot_sections.discard(section)
            hi = min(lo + pps, cfg.nr_pages)
            words = self.rec[lo:hi]
            parts.append(np.flatnonzero(((words >> rb) & 1).astype(bool)
                                        & (self.node_of[lo:hi] == nid)) + lo)
        cands = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        if not len(cands):
            return empty, empty, empty
        words = self.rec[cands].astype(np.uint64).astype(np.int64) if _bits < 64 else \
            self.rec[cands].view(np.int64)
        self.rec[cands] = 0
        if ns is None:
            targets = np.full(len(cands), cfg.pghot_target_nid, dtype=np.int64)
        else:
            targets = (words >> ns) & ((1 << nw) - 1)
        keep = self.node_of[cands] != targets
        cands, words, targets = cands[keep], words[keep], targets[keep]
        time = (words >> ts) & tmask
        if bshift:
            bm = tmask << bshift
            lat = ((now & bm) - (time << bshift)) & bm
        else:
            lat = (now - time) & tmask
        lat = _msecs(lat, cfg.hz)
        i, n = 0, len(cands)
        change = np.flatnonzero(targets[1:] != targets[:-1]) + 1
        ends = np.r_[change, n]
        while i < n:
            j = int(ends[np.searchsorted(ends, i, side="right")])
            t = int(targets[i])
            room = batch + 1 - (npend if cur == t else 0)
            codes, m = self._decide(t, lat[i:j], now, self.window_ms, 60000, room,
                                    self._balanced(t))
            acc = np.flatnonzero(codes)
            if len(acc):
                if cur not in (NUMA_NO_NODE, t):
                    flush(cur)
                cur = t
                pend_pf.append(cands[i + acc])
                pend_code.append(codes[acc].astype(np.int64))
                npend += len(acc)
                if npend > batch:
                    flush(cur)
            i += m
        if npend:
            flush(cur)
        if not done:
            return empty, empty, empty
        return (np.concatenate([d[0] for d in done]),
                np.concatenate([np.full(len(d[0]), d[1], dtype=np.int64) for d in done]),
                np.concatenate([d[2] for d in done]))

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
        """Demote top-tier pages in order (same target rule as ``demote``), vectorised;
        stops at the first page that finds no room. Returns how many moved."""
        pf = np.asarray(pfns, dtype=np.int64)
        src = self.node_of[pf].astype(np.int64)
        if len(pf) and not self.toptier[src].all():
            raise TierError("demote_batch: a page is not on a top-tier node")
        moved = 0
        for nid in range(self.nr_nodes):
            if self.toptier[nid] or moved == len(pf):
                continue
            k = int(min(self.capacity[nid] - self.used[nid], len(pf) - moved))
            if k <= 0:
                continue
            part, from_ = pf[moved:moved + k], src[moved:moved + k]
            self.node_of[part] = nid
            self.used[nid] += k
            counts = np.bincount(from_, minlength=self.nr_nodes)
            self.used -= np.where(np.arange(self.nr_nodes) == nid, 0, counts)
            for n, c in enumerate(counts.tolist()):
                if c:
                    self.pgdat[n]["pgdemote"] += c
            self._count("pgdemote_kswapd", k)
            moved += k
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
