"""The fast KSM reference: the same behaviour as spec/ksm.py on flat numpy arrays.

Contents are interned to int64 fingerprints (0 is the zero page). Per mm, one array per
field: PTEs (page id, or KSM_ZERO / SKSM_ZERO / NONE), VM_MERGEABLE, and the rmap_item
fields (present, oldchecksum, flags, head node, age, remaining_skips). Pages are global
arrays (content, mapcount, stable node, SKSM flag).

A full scan first classifies every visit with vector operations and does the order-free
work in bulk: a KSM page whose item is already on its node (the steady state of merged
memory), a page whose checksum changed (when its item is not on a stable node), a
zero-content page under use_zero_pages, and a page whose content occurs nowhere else in
the stable tree or in this pass (it goes to the unstable tree). Only visits that touch shared
tree state (merges, appends, unlinks from stable nodes, chains) run one by one, in the
kernel's order, with the spec's logic. Removing a stable node invalidates its items lazily
(an item flagged stable on a dead node counts as unflagged) instead of walking them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from spec import ksm as S

NONE, KSM_ZERO, SKSM_ZERO = -3, -1, -2
UNSTABLE, STABLE = 1, 2
I64 = npt.NDArray[np.int64]


class KsmRefError(S.KsmError):
    pass


class _Mm:
    def __init__(self, name: str, ptes: I64) -> None:
        n = len(ptes)
        self.name = name
        self.ptes = ptes
        self.mergeable = np.zeros(n, dtype=bool)
        self.has = np.zeros(n, dtype=bool)
        self.old = np.full(n, -1, dtype=np.int64)
        self.flags = np.zeros(n, dtype=np.int8)
        self.head = np.full(n, -1, dtype=np.int64)
        self.age = np.zeros(n, dtype=np.int16)
        self.rem = np.zeros(n, dtype=np.int16)
        self.registered = False
        self.merge_any = False
        self.exited = False
        self.rmap_items = 0
        self.merging = 0
        self.zero = 0


class Ksm:
    """Same operations as :class:`checker.ksm_scenario.SpecRunner`."""

    def __init__(self, knobs: dict[str, int] | None = None, variant: str = "v6.18") -> None:
        st = S.new_state(knobs, variant)  # validates knobs and variant
        self.knobs = st.knobs
        self.variant = variant
        self.mps = st.knobs["max_page_sharing"]
        self.keys: dict[str, int] = {S.ZERO: 0}
        self.labels: list[str] = [S.ZERO]
        cap = 1024
        self.pg_content = np.zeros(cap, dtype=np.int64)
        self.pg_map = np.zeros(cap, dtype=np.int64)
        self.pg_node = np.full(cap, -1, dtype=np.int64)
        self.pg_sksm = np.zeros(cap, dtype=bool)
        self.npages = 0
        self.mms: dict[str, _Mm] = {}
        self.mm_list: list[str] = []
        # stable nodes: id -> fields; dead nodes are simply absent.
        self.node_kpage: dict[int, int] = {}
        self.node_len: dict[int, int] = {}
        self.node_content: dict[int, int] = {}
        self.node_chain: dict[int, int] = {}
        self.node_mm: dict[int, dict[str, int]] = {}
        self.chains: dict[int, tuple[int, list[int]]] = {}
        self.stable: dict[int, tuple[int, int]] = {}   # content -> (is_chain, id)
        self._orders: dict[int, bytes] = {}
        self._rb = _RbTree(self._order)
        self.unstable: dict[int, tuple[str, int]] = {}
        self.sksm_ht: dict[int, int] = {}
        self.next_id = 0
        self.seqnr = 0
        self.shared = self.sharing = self.unshared = 0
        self.rmap_items = self.zero = self.chains_n = self.dups_n = 0
        self.pages_scanned = self.pages_skipped = 0

    # --- pages --------------------------------------------------------------------------

    def _key(self, label: str) -> int:
        k = self.keys.get(label)
        if k is None:
            k = self.keys[label] = len(self.labels)
            self.labels.append(label)
        return k

    def _order(self, c: int) -> bytes:
        """memcmp order of content ``c`` (checker.ksm_scenario.content_bytes)."""
        o = self._orders.get(c)
        if o is None:
            o = self._orders[c] = bytes(32) if c == 0 else hashlib.sha256(
                self.labels[c].encode()).digest()
        return o

    def _grow(self, n: int) -> None:
        need = self.npages + n
        cap = len(self.pg_content)
        if need <= cap:
            return
        while cap < need:
            cap *= 2
        for name, fill in (("pg_content", 0), ("pg_map", 0), ("pg_node", -1),
                           ("pg_sksm", False)):
            old = getattr(self, name)
            new = np.full(cap, fill, dtype=old.dtype)
            new[:len(old)] = old
            setattr(self, name, new)

    def _new_pages(self, keys: I64) -> I64:
        n = len(keys)
        self._grow(n)
        ids = np.arange(self.npages, self.npages + n, dtype=np.int64)
        self.pg_content[ids] = keys
        self.pg_map[ids] = 1
        self.pg_node[ids] = -1
        self.pg_sksm[ids] = False
        self.npages += n
        return ids

    def _put(self, pid: int) -> None:
        self.pg_map[pid] -= 1
        if self.pg_map[pid] == 0 and self.pg_sksm[pid]:
            c = int(self.pg_content[pid])
            if self.sksm_ht.get(c) == pid:
                del self.sksm_ht[c]

    def _put_many(self, pids: I64) -> None:
        if len(pids) == 0:
            return
        np.subtract.at(self.pg_map, pids, 1)
        for pid in pids[self.pg_sksm[pids]].tolist():
            c = int(self.pg_content[pid])
            if self.pg_map[pid] == 0 and self.sksm_ht.get(c) == pid:
                del self.sksm_ht[c]

    def _alive(self, pid: int) -> bool:
        return bool(self.pg_map[pid] > 0)

    def _mm(self, name: str) -> _Mm:
        mm = self.mms.get(name)
        if mm is None or mm.exited:
            raise KsmRefError(f"no live process {name!r}")
        return mm

    def _rng(self, mm: _Mm, start: int, count: int) -> slice:
        if start < 0 or count < 0 or start + count > len(mm.ptes):
            raise KsmRefError(f"pages {start}..{start + count - 1} outside process {mm.name!r}")
        return slice(start, start + count)

    # --- user operations ----------------------------------------------------------------

    def create_process(self, name: str, contents: tuple[str, ...] | list[str]) -> None:
        if name in self.mms:
            raise KsmRefError(f"process {name!r} exists")
        keys = np.fromiter((self._key(c) for c in contents), dtype=np.int64,
                           count=len(contents))
        self.mms[name] = _Mm(name, self._new_pages(keys))

    def create_process_keys(self, name: str, keys: I64) -> None:
        """A process whose pages hold content ids ``keys`` (0 = zero page; ids are opaque
        labels "#<id>"), for callers that fingerprint real memory."""
        keys = np.asarray(keys, dtype=np.int64)
        top = int(keys.max(initial=0))
        while len(self.labels) <= top:
            self._key(f"#{len(self.labels)}")
        if name in self.mms:
            raise KsmRefError(f"process {name!r} exists")
        self.mms[name] = _Mm(name, self._new_pages(keys))

    def _enter(self, mm: _Mm) -> None:
        mm.registered = True
        self.mm_list.append(mm.name)

    def _break(self, mm: _Mm, idx: I64) -> None:
        """break_ksm on ``idx`` (KSM pages and KSM zero PTEs get private copies)."""
        p = mm.ptes[idx]
        z = idx[p == KSM_ZERO]
        if len(z):
            self.zero -= len(z)
            mm.zero -= len(z)
            mm.ptes[z] = self._new_pages(np.zeros(len(z), dtype=np.int64))
        normal = idx[p >= 0]
        k = normal[self.pg_node[mm.ptes[normal]] >= 0]
        if len(k):
            old = mm.ptes[k].copy()
            mm.ptes[k] = self._new_pages(self.pg_content[old])
            self._put_many(old)

    def madvise(self, name: str, start: int, count: int, advice: str) -> None:
        mm = self._mm(name)
        r = self._rng(mm, start, count)
        idx = np.arange(r.start, r.stop)
        mapped = idx[mm.ptes[idx] != NONE]
        sksm = self.variant == "sksm"
        if advice == "merge":
            if not sksm:
                raise KsmRefError("MADV_MERGE is SKSM (variant 'sksm')")
            self._sksm_merge(mm, mapped)
        elif advice == "mergeable" and not sksm:
            if not mm.registered:
                self._enter(mm)
            mm.mergeable[mapped] = True
        elif advice == "unmergeable" and not sksm:
            m = mapped[mm.mergeable[mapped]]
            self._break(mm, m)
            mm.mergeable[m] = False
        else:
            raise KsmRefError(f"advice {advice!r} not available in variant {self.variant}")

    def _sksm_merge(self, mm: _Mm, idx: I64) -> None:
        for i in idx:
            pid = int(mm.ptes[i])
            if pid < 0:
                continue
            c = int(self.pg_content[pid])
            if c == 0:
                self._put(pid)
                mm.ptes[i] = SKSM_ZERO
                continue
            canon = self.sksm_ht.get(c)
            if canon == pid:
                continue
            if canon is None:
                self.pg_sksm[pid] = True
                self.sksm_ht[c] = pid
                continue
            self._put(pid)
            self.pg_map[canon] += 1
            mm.ptes[i] = canon

    def write(self, name: str, page: int, content: str) -> None:
        mm = self._mm(name)
        self._rng(mm, page, 1)
        pte = int(mm.ptes[page])
        key = self._key(content)
        if pte == NONE:
            raise KsmRefError(f"write to unmapped page {page} of {name!r}")
        if pte == KSM_ZERO:
            self.zero -= 1
            mm.zero -= 1
        if pte >= 0 and not (self.pg_node[pte] >= 0 or self.pg_sksm[pte]
                             or self.pg_map[pte] > 1):
            self.pg_content[pte] = key
            return
        if pte >= 0:
            self._put(pte)
        mm.ptes[page] = self._new_pages(np.array([key], dtype=np.int64))[0]

    def _zap(self, mm: _Mm, idx: I64) -> None:
        p = mm.ptes[idx]
        nz = int(np.count_nonzero(p == KSM_ZERO))
        self.zero -= nz
        mm.zero -= nz
        self._put_many(p[p >= 0])
        mm.ptes[idx] = NONE
        mm.mergeable[idx] = False

    def munmap(self, name: str, start: int, count: int) -> None:
        mm = self._mm(name)
        r = self._rng(mm, start, count)
        self._zap(mm, np.arange(r.start, r.stop))

    def fork(self, name: str, child: str) -> None:
        p = self._mm(name)
        if child in self.mms:
            raise KsmRefError(f"process {child!r} exists")
        c = _Mm(child, p.ptes.copy())
        c.mergeable = p.mergeable.copy()
        c.merge_any = p.merge_any
        np.add.at(self.pg_map, c.ptes[c.ptes >= 0], 1)
        c.zero = p.zero
        self.mms[child] = c
        if p.registered:
            if self.variant == "v6.17":
                c.rmap_items, c.merging = p.rmap_items, p.merging
            else:
                self.zero += c.zero
            self._enter(c)

    def exit_process(self, name: str) -> None:
        mm = self._mm(name)
        self._zap(mm, np.arange(len(mm.ptes)))
        mm.exited = True
        if mm.registered:
            self.mm_list.remove(name)
            if mm.has.any():
                self.mm_list.insert(0, name)
            else:
                mm.registered = False
        if not mm.registered:
            del self.mms[name]

    def prctl_memory_merge(self, name: str, value: int) -> None:
        mm = self._mm(name)
        if self.variant == "sksm":
            raise KsmRefError("PR_SET_MEMORY_MERGE needs KSM")
        allidx = np.arange(len(mm.ptes))
        if value:
            if mm.merge_any:
                return
            if not mm.registered:
                self._enter(mm)
            mm.merge_any = True
            mm.mergeable[mm.ptes != NONE] = True
        elif mm.merge_any:
            m = allidx[mm.mergeable]
            self._break(mm, m)
            mm.mergeable[m] = False
            mm.merge_any = False

    # --- stable tree (one by one, as the spec) -----------------------------------------

    def _nid(self) -> int:
        self.next_id += 1
        return self.next_id

    def _stale(self, node: int) -> bool:
        return not self._alive(self.node_kpage[node])

    def _remove_node(self, node: int) -> None:
        n = self.node_len[node]
        if n:
            self.sharing -= n - 1
            self.shared -= 1
        for mname, cnt in self.node_mm[node].items():
            if cnt:
                self.mms[mname].merging -= cnt
        ch = self.node_chain.get(node)
        if ch is not None:
            self.chains[ch][1].remove(node)
            self.dups_n -= 1
        else:
            self._rb.erase(self.node_content[node])
            del self.stable[self.node_content[node]]
        for d in (self.node_kpage, self.node_len, self.node_content, self.node_mm):
            del d[node]
        self.node_chain.pop(node, None)

    def _flag(self, mm: _Mm, a: int) -> int:
        f = int(mm.flags[a])
        if f == STABLE and int(mm.head[a]) not in self.node_len:
            mm.flags[a] = 0
            return 0
        return f

    def _remove_item(self, mm: _Mm, a: int) -> None:
        f = self._flag(mm, a)
        if f == STABLE:
            node = int(mm.head[a])
            if self._stale(node):
                self._remove_node(node)
                mm.flags[a] = 0
                return
            self.node_len[node] -= 1
            if self.node_len[node]:
                self.sharing -= 1
            else:
                self.shared -= 1
            mm.merging -= 1
            self.node_mm[node][mm.name] -= 1
            mm.flags[a] = 0
            mm.head[a] = -1
        elif f == UNSTABLE:
            c = int(mm.old[a])
            if self.unstable.get(c) == (mm.name, a):
                del self.unstable[c]
            self.unshared -= 1
            mm.flags[a] = 0

    def _cand(self, node: int, offset: int = 0) -> bool:
        n = self.node_len[node]
        return n > 0 and n + offset < self.mps

    def _chain_dup(self, ch: int, prune: bool) -> int | None:
        content, dups = self.chains[ch]
        found: int | None = None
        for d in list(dups):
            if self._stale(d):
                self._remove_node(d)
                continue
            if found is None or (self._cand(d) and (
                    not self._cand(found) or self.node_len[d] > self.node_len[found])):
                found = d
                if not prune and self._cand(found):
                    break
        if found is None:
            self._rb.erase(content)
            del self.stable[content]
            del self.chains[ch]
            self.chains_n -= 1
            return None
        if len(dups) == 1:
            del self.node_chain[found]
            self.stable[content] = (0, found)
            del self.chains[ch]
            self.chains_n -= 1
            self.dups_n -= 1
        elif dups[0] != found and self._cand(found, 1):
            dups.remove(found)
            dups.insert(0, found)
        return found

    def _lookup(self, content: int, prune: bool) -> tuple[bool, int] | None:
        """The rbtree descent of stable_tree_search / stable_tree_insert, resolving (and
        so pruning, collapsing or erasing) every entry on the path (the spec's _lookup)."""
        target = self._rb.order(content)
        rb = self._rb.nodes
        while True:
            cur = self._rb.root
            restart = False
            while cur is not None:
                is_chain, ident = self.stable[cur]
                if not is_chain:
                    if self._stale(ident):
                        self._remove_node(ident)
                        restart = True
                        break
                    found: int | None = ident
                else:
                    found = self._chain_dup(ident, prune)
                    if found is None:
                        restart = True
                        break
                here = self._rb.order(cur)
                if target < here:
                    cur = rb[cur][0]
                elif target > here:
                    cur = rb[cur][1]
                else:
                    assert found is not None
                    return found in self.node_chain, found
            if not restart:
                return None

    def _insert(self, kpage: int) -> int:
        content = int(self.pg_content[kpage])
        found = self._lookup(content, prune=False)
        node = self._nid()
        self.node_kpage[node] = kpage
        self.node_len[node] = 0
        self.node_content[node] = content
        self.node_mm[node] = {}
        self.pg_node[kpage] = node
        if found is None:
            self.stable[content] = (0, node)
            self._rb.insert(content)
            return node
        in_chain, old = found
        if not in_chain:
            ch = self._nid()
            self.chains[ch] = (content, [old])
            self.stable[content] = (1, ch)
            self.node_chain[old] = ch
            self.chains_n += 1
            self.dups_n += 1
        else:
            ch = self.node_chain[old]
        self.node_chain[node] = ch
        self.chains[ch][1].insert(0, node)
        self.dups_n += 1
        return node

    def _append(self, mm: _Mm, a: int, node: int) -> None:
        self.node_len[node] += 1
        if self.node_len[node] > 1:
            self.sharing += 1
        else:
            self.shared += 1
        mm.merging += 1
        self.node_mm[node][mm.name] = self.node_mm[node].get(mm.name, 0) + 1
        mm.flags[a] = STABLE
        mm.head[a] = node

    def _repoint(self, mm: _Mm, a: int, kpage: int) -> None:
        old = int(mm.ptes[a])
        if old == kpage:
            return
        self.pg_map[kpage] += 1
        mm.ptes[a] = kpage
        self._put(old)

    def _visit(self, mm: _Mm, a: int) -> None:
        """cmp_and_merge_page, one by one (the spec's KSM-OP-002)."""
        pid = int(mm.ptes[a])
        node = int(self.pg_node[pid])
        if node >= 0:
            if self._flag(mm, a) == STABLE and int(mm.head[a]) == node:
                return
        else:
            self._remove_item(mm, a)
            c = int(self.pg_content[pid])
            if int(mm.old[a]) != c:
                mm.old[a] = c
                return
            if self.knobs["use_zero_pages"] and c == 0:
                self._zero_merge(mm, np.array([a]))
                return
        # stable_tree_search
        if node >= 0:
            kpage: int | None = pid
        else:
            f = self._lookup(int(self.pg_content[pid]), prune=True)
            kpage = self.node_kpage[f[1]] if f is not None and self._cand(f[1]) else None
        self._remove_item(mm, a)
        if kpage is not None:
            self._repoint(mm, a, kpage)
            self._append(mm, a, int(self.pg_node[kpage]))
            return
        c = int(self.pg_content[pid])
        t = self.unstable.get(c)
        if t is not None:
            tmm = self.mms[t[0]]
            if int(tmm.ptes[t[1]]) == pid:
                return
            self._remove_item(tmm, t[1])
            n = self._insert(pid)
            self._repoint(tmm, t[1], pid)
            self._append(tmm, t[1], n)
            self._append(mm, a, n)
            return
        mm.flags[a] = UNSTABLE
        self.unstable[c] = (mm.name, a)
        self.unshared += 1

    def _zero_merge(self, mm: _Mm, idx: I64) -> None:
        old = mm.ptes[idx].copy()
        mm.ptes[idx] = KSM_ZERO
        self._put_many(old)
        self.zero += len(idx)
        mm.zero += len(idx)

    # --- the full scan -------------------------------------------------------------------

    def _free(self, mm: _Mm, idx: I64) -> None:
        """Free the rmap_items at ``idx`` (in address order)."""
        for a in idx:
            if mm.flags[a]:
                self._remove_item(mm, int(a))
        mm.has[idx] = False
        mm.flags[idx] = 0
        mm.old[idx] = -1
        mm.head[idx] = -1
        mm.age[idx] = 0
        mm.rem[idx] = 0
        self.rmap_items -= len(idx)
        mm.rmap_items -= len(idx)

    def full_scan(self) -> None:
        if self.variant == "sksm":
            return
        self.unstable = {}
        self._rest_of, self._seq_of, self._forked_of = {}, {}, {}
        # stable nodes made in bulk enter the rbtree at their merge's place in scan order
        self._rb_later: dict[str, list[int]] = {}
        self._rb_at: dict[tuple[str, int], int] = {}
        # Phase 1, per mm, order-free work; the rest becomes ordered events.
        work: list[Any] = []
        for rank, name in enumerate(self.mm_list):
            mm = self.mms[name]
            if mm.exited:
                gone = np.flatnonzero(mm.has)
                work.append((rank, mm, np.empty(0, dtype=np.int64), gone, set()))
            else:
                work.append((rank, mm, *self._prepare_mm(mm)))
        # Phase 2: groups of fresh identical pages touched by nothing else go in bulk.
        seq_parts, rest_parts = [], []
        for rank, mm, seq, _gone, _skip in work:
            if len(seq):
                kind = self._rest_of.pop(mm.name)
                seq_parts.append(seq[~kind])
                rest_parts.append((rank, mm, seq[kind]))
        # appends to or unlinks from a chain's dups in this pass could change which dup a
        # passing prune walk picks: then every lookup runs in order
        self._touch_chain = False
        if self.node_chain:
            for _rank, mm, seq, gone, _skip in work:
                heads = np.concatenate([mm.head[seq][mm.flags[seq] == STABLE],
                                        mm.head[gone], self.pg_node[mm.ptes[seq][
                                            mm.ptes[seq] >= 0]]])
                if any(int(h) in self.node_chain for h in heads.tolist()):
                    self._touch_chain = True
                    break
        self._bulk_groups(rest_parts, seq_parts)
        # Phase 3: the ordered events, in mm order then address order.
        for _rank, mm, _seq, gone, skipset in work:
            seq = self._seq_of.pop(mm.name, np.empty(0, dtype=np.int64))
            forked = self._forked_of.pop(mm.name, set())
            events = sorted([(int(a), 0) for a in gone] + [(int(a), 1) for a in seq]
                            + [(a, 2) for a in self._rb_later.pop(mm.name, [])])
            for a, kind in events:
                if kind == 2:
                    self._rb.insert(self._rb_at[(mm.name, a)])
                elif kind == 0:
                    self._free(mm, np.array([a]))
                elif a in skipset:
                    self._remove_item(mm, a)
                elif a in forked and self._should_skip(mm, a):
                    self._remove_item(mm, a)
                else:
                    if a in forked:
                        self.pages_scanned += 1
                    self._visit(mm, a)
        for name in list(self.mm_list):
            mm = self.mms[name]
            if mm.exited or not (mm.mergeable & (mm.ptes != NONE)).any():
                self.mm_list.remove(name)
                mm.registered = False
                if mm.exited:
                    del self.mms[name]
        self.seqnr += 1

    _rest_of: dict[str, Any]
    _seq_of: dict[str, Any]
    _forked_of: dict[str, set[int]]
    _touch_chain = False

    def _should_skip(self, mm: _Mm, a: int) -> bool:
        """should_skip_rmap_item for one visit (the spec's KSM-OP-009)."""
        if not self.knobs["smart_scan"] or self.pg_node[mm.ptes[a]] >= 0:
            return False
        age = int(mm.age[a])
        if age != 255:
            mm.age[a] = age + 1
        if age < 3:
            return False
        if not mm.rem[a]:
            mm.rem[a] = 1 if age <= 3 else 2 if age <= 5 else 4 if age <= 8 else 8
            return False
        self.pages_skipped += 1
        mm.rem[a] -= 1
        return True

    def _prepare_mm(self, mm: _Mm) -> tuple[I64, I64, set[int]]:
        """Order-free work of one mm's visit; returns (ordered visits, stable items to free
        in order, skipped addresses among the ordered visits)."""
        vis_mask = mm.mergeable & (mm.ptes >= 0)
        visit = np.flatnonzero(vis_mask)
        gone = np.flatnonzero(mm.has & ~vis_mask)
        new = visit[~mm.has[visit]]
        mm.has[new] = True
        self.rmap_items += len(new)
        mm.rmap_items += len(new)
        pids = mm.ptes[visit]
        is_ksm = self.pg_node[pids] >= 0
        # a page still shared after fork may become a KSM page earlier in this pass (when
        # another mapping of it merges): such visits are decided entirely in order.
        forked = ~is_ksm & (self.pg_map[pids] > 1)
        skip = np.zeros(len(visit), dtype=bool)
        if self.knobs["smart_scan"]:
            v = visit[~is_ksm & ~forked]
            age = mm.age[v].copy()
            mm.age[v] = np.minimum(age + 1, 255)
            old_enough = age >= 3
            rem = mm.rem[v]
            reset = old_enough & (rem == 0)
            mm.rem[v[reset]] = np.select([age[reset] <= 3, age[reset] <= 5, age[reset] <= 8],
                                         [1, 2, 4], 8)
            sk = old_enough & (rem > 0)
            mm.rem[v[sk]] -= 1
            skip[np.flatnonzero(~is_ksm & ~forked)[sk]] = True
            self.pages_skipped += int(sk.sum())
        self.pages_scanned += int(len(visit) - skip.sum() - forked.sum())
        content = self.pg_content[pids]
        flags = mm.flags[visit]
        st = flags == STABLE
        if st.any():
            heads = mm.head[visit[st]].tolist()
            live = np.fromiter((h in self.node_len for h in heads), dtype=bool,
                               count=len(heads))
            mm.flags[visit[st][~live]] = 0
            flags = mm.flags[visit]
            st = flags == STABLE
        steady = is_ksm & st & (mm.head[visit] == self.pg_node[pids])
        uf = (flags == UNSTABLE) & ~is_ksm & ~forked
        self.unshared -= int(uf.sum())
        mm.flags[visit[uf]] = 0
        simple = ~is_ksm & ~st & ~skip & ~forked
        changed = simple & (mm.old[visit] != content)
        mm.old[visit[changed]] = content[changed]
        rest = simple & ~changed
        if self.knobs["use_zero_pages"]:
            z = rest & (content == 0)
            if z.any():
                self._zero_merge(mm, visit[z])
            rest &= content != 0
        ordered = ~steady & ~(simple & ~rest) & ~(skip & ~st)
        self._free(mm, gone[mm.flags[gone] != STABLE])
        stable_gone = gone[mm.flags[gone] == STABLE]
        self._rest_of[mm.name] = rest[ordered]
        self._forked_of[mm.name] = set(visit[forked].tolist())
        return visit[ordered], stable_gone, set(visit[skip & st].tolist())

    def _bulk_safe(self, content: I64, rest_parts: list[Any], seq_parts: list[I64],
                   busy: set[int]) -> bool:
        """Skipping a lookup's descent is exact only if no descent of this pass can change
        what it passes: no stale node, every chain quiet (two or more dups, all full), and
        no content handled one by one seen often enough to fill a node and start a chain
        (the chains the bulk path itself makes are quiet: newest, fullest-candidate dup
        first, nothing else appends to them)."""
        if self._touch_chain:
            return False
        if self.node_kpage:
            kp = np.fromiter(self.node_kpage.values(), dtype=np.int64,
                             count=len(self.node_kpage))
            if (self.pg_map[kp] <= 0).any():
                return False
        # a chain is quiet if passing it changes nothing: two or more dups, all full (no
        # append can change a length), the one a prune walk picks already first
        seen = [content] + [self.pg_content[m.ptes[q]] for (_r, m, _v), q in
                            zip(rest_parts, seq_parts, strict=True) if len(q)]
        c, n = np.unique(np.concatenate(seen), return_counts=True)
        # a chain is quiet if a prune walk over it changes nothing all pass long: two or
        # more dups, the one it picks already first, and that one cannot fill up while
        # another dup could take sharers (the walk would then move that one first)
        chain_contents = []
        for content_c, dups in self.chains.values():
            if len(dups) < 2:
                return False
            pick: int | None = None
            for d in dups:
                if pick is None or (self._cand(d) and (
                        not self._cand(pick) or self.node_len[d] > self.node_len[pick])):
                    pick = d
            if pick != dups[0] and pick is not None and self._cand(pick, 1):
                return False
            i = int(np.searchsorted(c, content_c))
            met = int(n[i]) if i < len(c) and c[i] == content_c else 0
            if any(self._cand(d) for d in dups[1:]) and \
                    self.node_len[dups[0]] + met >= self.mps - 1:
                return False
            chain_contents.append(content_c)
        keep = np.isin(c, np.fromiter(busy, dtype=np.int64, count=len(busy)))
        c, n = c[keep], n[keep]
        have = np.zeros(len(c), dtype=np.int64)
        plain = [(k, i) for k, (is_chain, i) in self.stable.items() if not is_chain]
        if plain:
            sc = np.fromiter((k for k, _i in plain), dtype=np.int64, count=len(plain))
            sl = np.fromiter((self.node_len[i] for _k, i in plain), dtype=np.int64,
                             count=len(plain))
            pos = np.searchsorted(c, sc)
            hit = pos < len(c)
            hit[hit] = c[pos[hit]] == sc[hit]
            have[pos[hit]] = sl[hit]
        if chain_contents:   # checked above
            have[np.isin(c, np.array(chain_contents, dtype=np.int64))] = 0
            n = np.where(np.isin(c, np.array(chain_contents, dtype=np.int64)), 0, n)
        return bool(((have + n) < self.mps).all())

    def _bulk_groups(self, rest_parts: list[Any], seq_parts: list[I64]) -> None:
        """Fresh pages whose content nothing else touches this pass: a lone page goes to the
        unstable tree; n <= max_page_sharing identical pages merge as the kernel would pair
        and append them (the second page scanned becomes the KSM page)."""
        if not rest_parts or not sum(len(v) for _r, _m, v in rest_parts):
            for i, (_r, m, v) in enumerate(rest_parts):
                self._seq_of[m.name] = np.sort(np.concatenate([v, seq_parts[i]]))
            return
        mms = [m for _r, m, _v in rest_parts]
        a_all = np.concatenate([v for _r, _m, v in rest_parts])
        who = np.concatenate([np.full(len(v), i) for i, (_r, _m, v) in enumerate(rest_parts)])
        pid = np.concatenate([m.ptes[v] for _r, m, v in rest_parts])
        content = self.pg_content[pid]
        busy = set(self.stable)
        for (_r, m, _v), seq in zip(rest_parts, seq_parts, strict=True):
            if len(seq):
                busy.update(self.pg_content[m.ptes[seq]].tolist())
        if not self._bulk_safe(content, rest_parts, seq_parts, busy):
            for i, (_r, m, v) in enumerate(rest_parts):
                self._seq_of[m.name] = np.sort(np.concatenate([v, seq_parts[i]]))
            return
        order = np.argsort(content, kind="stable")   # keeps global scan order in a group
        c_sorted = content[order]
        starts = np.flatnonzero(np.r_[True, c_sorted[1:] != c_sorted[:-1]])
        sizes = np.diff(np.r_[starts, len(order)])
        shared_pages = self.pg_map[pid] != 1
        bad_group = np.add.reduceat(shared_pages[order].astype(np.int64), starts) > 0
        ok = ~bad_group
        if busy:
            ok &= ~np.isin(c_sorted[starts], np.fromiter(busy, dtype=np.int64, count=len(busy)))
        member = np.repeat(ok, sizes)                    # per sorted position
        # More than max_page_sharing fresh copies: the kernel fills one dup per chunk of
        # max_page_sharing pages in scan order (the chunk's second page is its KSM page);
        # a last chunk of one page stays in the unstable tree, and two or more dups hang
        # off one chain, newest first.
        big = np.flatnonzero(ok & (sizes > self.mps))
        chained: list[tuple[int, int]] = []             # (content, number of dups)
        if len(big):
            keep = ok & (sizes <= self.mps)
            vst, vsz = [starts[keep]], [sizes[keep]]
            for g in big.tolist():
                st0, n = int(starts[g]), int(sizes[g])
                cs = np.arange(st0, st0 + n, self.mps)
                cz = np.minimum(self.mps, st0 + n - cs)
                vst.append(cs)
                vsz.append(cz)
                chained.append((int(c_sorted[st0]), int((cz > 1).sum())))
            starts = np.concatenate(vst)
            sizes = np.concatenate(vsz)
            srt = np.argsort(starts, kind="stable")
            starts, sizes = starts[srt], sizes[srt]
        else:
            starts, sizes = starts[ok], sizes[ok]
        gsel = np.arange(len(starts))
        bulk = np.zeros(len(order), dtype=bool)
        bulk[order[member]] = True
        # lone pages: unstable tree
        single = gsel[sizes[gsel] == 1]
        s_idx = order[starts[single]]
        for i, a, c in zip(s_idx.tolist(), a_all[s_idx].tolist(), content[s_idx].tolist(),
                           strict=True):
            m = mms[who[i]]
            m.flags[a] = UNSTABLE
            self.unstable[c] = (m.name, a)
        self.unshared += len(s_idx)
        # groups: one new stable node each; the second page scanned is the KSM page
        multi = gsel[sizes[gsel] > 1]
        if len(multi):
            first_node = self.next_id + 1
            self.next_id += len(multi)
            nodes = np.arange(first_node, first_node + len(multi), dtype=np.int64)
            kpages = pid[order[starts[multi] + 1]]
            gsizes = sizes[multi]
            pos = np.concatenate([np.arange(st, st + n) for st, n in
                                  zip(starts[multi].tolist(), gsizes.tolist(), strict=True)])
            items = order[pos]
            item_node = np.repeat(nodes, gsizes)
            item_kpage = np.repeat(kpages, gsizes)
            moved = pid[items] != item_kpage
            self.pg_map[pid[items[moved]]] -= 1
            self.pg_map[kpages] = gsizes
            self.pg_node[kpages] = nodes
            self.shared += len(multi)
            self.sharing += int(gsizes.sum()) - len(multi)
            gcontent = content[order[starts[multi]]]
            for n_id, kp, c, gs in zip(nodes.tolist(), kpages.tolist(), gcontent.tolist(),
                                       gsizes.tolist(), strict=True):
                self.node_kpage[n_id] = kp
                self.node_len[n_id] = gs
                self.node_content[n_id] = c
                self.node_mm[n_id] = {}
                self.stable[c] = (0, n_id)
            seen: set[int] = set()
            for c, j in zip(gcontent.tolist(), order[starts[multi] + 1].tolist(), strict=True):
                if c not in seen:      # the first dup of a content is its rbtree node
                    seen.add(c)
                    m, a = mms[who[j]], int(a_all[j])
                    self._rb_later.setdefault(m.name, []).append(a)
                    self._rb_at[(m.name, a)] = c
            for c, ndups in chained:
                if ndups < 2:
                    continue
                mine = [n for n in nodes[gcontent == c].tolist()]
                ch = self._nid()
                self.chains[ch] = (c, mine[::-1])
                self.stable[c] = (1, ch)
                for n_id in mine:
                    self.node_chain[n_id] = ch
                self.chains_n += 1
                self.dups_n += len(mine)
            iw = who[items]
            for i, m in enumerate(mms):
                sel = iw == i
                if not sel.any():
                    continue
                aa = a_all[items[sel]]
                m.flags[aa] = STABLE
                m.head[aa] = item_node[sel]
                mv = moved[sel]
                m.ptes[aa[mv]] = item_kpage[sel][mv]
                m.merging += int(sel.sum())
                nn, cnt = np.unique(item_node[sel], return_counts=True)
                for n_id, k in zip(nn.tolist(), cnt.tolist(), strict=True):
                    self.node_mm[n_id][m.name] = k
        for i, (_r, m, v) in enumerate(rest_parts):
            self._seq_of[m.name] = np.sort(np.concatenate([v[~bulk[who == i]], seq_parts[i]]))
    def scan(self) -> dict[str, Any]:
        """Full scans until two leave the counters unchanged (the spec's KSM-OP-018)."""
        history = [S._fingerprint(self.observe())]
        for _ in range(S.MAX_PASSES):
            if self.variant == "sksm":
                return self.observe()
            self.full_scan()
            history.append(S._fingerprint(self.observe()))
            if len(history) >= 3 and history[-1] == history[-2] == history[-3]:
                return self.observe()
        raise KsmRefError(f"counters did not settle within {S.MAX_PASSES} full scans")

    # --- observation ---------------------------------------------------------------------

    def observe(self) -> dict[str, Any]:
        vol = self.rmap_items - self.shared - self.sharing - self.unshared
        rec: dict[str, Any] = {
            "pages_shared": self.shared, "pages_sharing": self.sharing,
            "pages_unshared": self.unshared, "pages_volatile": max(vol, 0),
            "ksm_zero_pages": self.zero,
            "general_profit": (self.sharing + self.zero) * S.PAGE_SIZE
            - self.rmap_items * S.RMAP_ITEM_SIZE,
            "stable_node_chains": self.chains_n, "stable_node_dups": self.dups_n,
        }
        rec["processes"] = {
            n: {"ksm_rmap_items": mm.rmap_items, "ksm_merging_pages": mm.merging,
                "ksm_zero_pages": mm.zero,
                "ksm_process_profit": (mm.merging + mm.zero) * S.PAGE_SIZE
                - mm.rmap_items * S.RMAP_ITEM_SIZE}
            for n, mm in self.mms.items() if not mm.exited}
        if self.variant == "sksm":
            canon = list(self.sksm_ht.values())
            rec["sksm"] = {"sksm_pages_shared": len(canon),
                           "sksm_pages_sharing": int(sum(self.pg_map[c] - 1 for c in canon)),
                           "sksm_zero_pages": int(sum(int((mm.ptes == SKSM_ZERO).sum())
                                                      for mm in self.mms.values()))}
        return rec

    def page_sharing(self) -> dict[str, list[str]]:
        out = {}
        for n, mm in self.mms.items():
            if mm.exited:
                continue
            row = []
            for p in mm.ptes.tolist():
                if p == NONE:
                    row.append("-")
                elif p == KSM_ZERO:
                    row.append("zero")
                elif p >= 0 and self.pg_node[p] >= 0:
                    row.append("ksm")
                else:
                    row.append("anon")
            out[n] = row
        return out

    def read(self, name: str) -> list[str | None]:
        mm = self.mms[name]
        return [None if p == NONE else S.ZERO if p < 0 else self.labels[self.pg_content[p]]
                for p in mm.ptes.tolist()]


class _RbTree:
    """lib/rbtree.c's red-black tree over content ids (shape only: it decides which entries
    a stable-tree lookup passes). Node = [left, right, parent, red]."""

    def __init__(self, order: Callable[[int], bytes]) -> None:
        self.order = order
        self.nodes: dict[int, list[Any]] = {}
        self.root: int | None = None

    def _child(self, old: int, new: int | None, parent: int | None) -> None:
        if parent is None:
            self.root = new
        elif self.nodes[parent][0] == old:
            self.nodes[parent][0] = new
        else:
            self.nodes[parent][1] = new

    def _set(self, n: int | None, parent: int | None, red: bool) -> None:
        if n is not None:
            self.nodes[n][2], self.nodes[n][3] = parent, red

    def _rotate(self, old: int, new: int, red: bool) -> None:
        rb = self.nodes
        parent = rb[old][2]
        rb[new][2], rb[new][3] = parent, rb[old][3]
        rb[old][2], rb[old][3] = new, red
        self._child(old, new, parent)

    def insert(self, key: int) -> None:
        rb = self.nodes
        target = self.order(key)
        parent, cur, side = None, self.root, 0
        while cur is not None:
            parent = cur
            side = 0 if target < self.order(cur) else 1
            cur = rb[cur][side]
        rb[key] = [None, None, parent, True]
        if parent is None:
            self.root = key
        else:
            rb[parent][side] = key
        node = key
        while True:
            if parent is None:
                self._set(node, None, False)
                return
            if not rb[parent][3]:
                return
            gparent = rb[parent][2]
            a, b = (0, 1) if rb[gparent][1] != parent else (1, 0)
            uncle = rb[gparent][b]
            if uncle is not None and rb[uncle][3]:
                self._set(uncle, gparent, False)
                self._set(parent, gparent, False)
                node = gparent
                parent = rb[node][2]
                self._set(node, parent, True)
                continue
            tmp = rb[parent][b]
            if node == tmp:
                tmp = rb[node][a]
                rb[parent][b] = tmp
                rb[node][a] = parent
                self._set(tmp, parent, False)
                self._set(parent, node, True)
                parent = node
                tmp = rb[node][b]
            rb[gparent][a] = tmp
            rb[parent][b] = gparent
            self._set(tmp, gparent, False)
            self._rotate(gparent, parent, True)
            return

    def erase(self, node: int) -> None:
        rb = self.nodes
        child, tmp = rb[node][1], rb[node][0]
        rebalance: int | None = None
        if tmp is None:
            parent, red = rb[node][2], rb[node][3]
            self._child(node, child, parent)
            if child is not None:
                self._set(child, parent, red)
            elif not red:
                rebalance = parent
        elif child is None:
            parent, red = rb[node][2], rb[node][3]
            self._set(tmp, parent, red)
            self._child(node, tmp, parent)
        else:
            successor, tmp = child, rb[child][0]
            parent = successor
            if tmp is not None:
                while tmp is not None:
                    parent, successor, tmp = successor, tmp, rb[tmp][0]
                rb[parent][0] = rb[successor][1]
                rb[successor][1] = child
                rb[child][2] = successor
            child2 = rb[successor][1] if parent == successor else rb[parent][0]
            rb[successor][0] = rb[node][0]
            rb[rb[node][0]][2] = successor
            npar, nred = rb[node][2], rb[node][3]
            self._child(node, successor, npar)
            if child2 is not None:
                self._set(child2, parent, False)
            elif not rb[successor][3]:
                rebalance = parent
            rb[successor][2], rb[successor][3] = npar, nred
        del rb[node]
        if rebalance is not None:
            self._erase_color(rebalance)

    def _erase_color(self, parent: int) -> None:
        rb = self.nodes
        node: int | None = None
        while True:
            a, b = (0, 1) if rb[parent][1] != node else (1, 0)
            sibling = rb[parent][b]
            if rb[sibling][3]:
                tmp1 = rb[sibling][a]
                rb[parent][b] = tmp1
                rb[sibling][a] = parent
                self._set(tmp1, parent, False)
                self._rotate(parent, sibling, True)
                sibling = tmp1
            tmp1 = rb[sibling][b]
            if tmp1 is None or not rb[tmp1][3]:
                tmp2 = rb[sibling][a]
                if tmp2 is None or not rb[tmp2][3]:
                    self._set(sibling, parent, True)
                    if rb[parent][3]:
                        rb[parent][3] = False
                    else:
                        node, nxt = parent, rb[parent][2]
                        if nxt is not None:
                            parent = nxt
                            continue
                    return
                tmp1 = rb[tmp2][b]
                rb[sibling][a] = tmp1
                rb[tmp2][b] = sibling
                rb[parent][b] = tmp2
                self._set(tmp1, sibling, False)
                tmp1, sibling = sibling, tmp2
            tmp2 = rb[sibling][a]
            rb[parent][b] = tmp2
            rb[sibling][a] = parent
            self._set(tmp1, sibling, False)
            if tmp2 is not None:
                rb[tmp2][2] = parent
            self._rotate(parent, sibling, False)
            return
