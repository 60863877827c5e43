"""Broken twins of the TIER spec's rules: negative evidence that each rule is pinned down.

For a rule stated by a function (or table) of the TIER spec, its twin is a plausible wrong
version of it: an off-by-one bucket or comparison, a counter that wraps instead of
saturating, a step that forgets to clear a bit, a window that ignores a node change, a
demotion into a full node. :func:`catch` puts the twin in place of the original in every
``spec`` and ``checker`` module that holds it (:func:`checker.spec_twins.installed`) and
runs the TIER checks (:func:`run_checks`):

1. seeded lockstep programs (:func:`lockstep_programs`): the steps of
   :class:`checker.tiering_fuzz.TierLockstep` (the spec against the independent numpy
   reference :class:`reference.tiering.TierMachine`, never patched; the whole state compared
   after every step; every TIER-INV invariant; TIER-PROP-001 for every promotion) driven by
   a seeded random program on each variant the rule applies to, biased towards a few hot
   pages so that frequencies, ready bits, heaps and hot lists fill up; then
2. the Hypothesis lockstep fuzz (``mmspec fuzz tier``) for ``fuzz_seconds``.

A twin that survives both means the rule's statement is not constrained by any check; the
tests require every twin to be caught, and :func:`baseline` (the same programs, no twin) to
find nothing.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

# Imported before any twin is installed: modules that bind spec names at import time must
# see the originals first (see checker.spec_twins.installed).
import checker.commands.tiering  # noqa: F401  (registers the "tier" lockstep area)
import checker.tiering_fuzz as TF
import reference.tiering  # noqa: F401
import spec.tiering  # noqa: F401
from checker import spec_twins
from checker.spec_twins import Hang, Twin
from spec.tier_common import (
    NUMA_NO_NODE,
    TIER_VARIANTS,
    hash_64,
    ite,
    mask,
    udiv,
    ugt,
    ult,
    umax,
    umin,
    usub,
)
from spec.tier_state import NodeConfig, TierConfig

# --- the seeded lockstep programs -----------------------------------------------------------


#: The first pfn that shares a kpromoted hash bucket with a smaller one: hash_64(46368, 16) ==
#: hash_64(0, 16) == 0 (46368 is a Fibonacci number: the golden-ratio hash spreads smaller
#: pfns into distinct buckets), and pfns p + 46368 share p's bucket for p in 0, 2, .., 14,
#: 21, 23. On the 24-page machines no bucket ever holds two records, so TIER-POL-003's
#: in-bucket order (newest first) is never observed: a twin walking each bucket oldest
#: first survived, and so did ``hash_64(pfn, 15)`` (one bit short: it keeps the bucket order
#: and merges only neighbouring buckets, which no two of pfns 0..23 occupy). Machines with a
#: far block of pages at this pfn observe both (MORE_TWINS).
BUCKET_PARTNER = 46368
#: The small pfns whose partner ``p + BUCKET_PARTNER`` shares their bucket, and those whose
#: partner is in the next bucket (a hash one bit short would merge the two).
SHARED = tuple(p for p in range(TF.NR_PAGES)
               if hash_64(p, 16) == hash_64(p + BUCKET_PARTNER, 16))
NEIGHBOURS = tuple(p for p in range(TF.NR_PAGES) if p not in SHARED
                   and hash_64(p, 15) == hash_64(p + BUCKET_PARTNER, 15))


def random_config(rng: random.Random, variant: str, far: bool = False) -> TierConfig:
    """A small machine like :func:`checker.tiering_fuzz.tier_configs` draws, from ``rng``;
    with ``far``, ``BUCKET_PARTNER + 24`` pages (the idle ones between the two blocks stay
    on the lower tier)."""
    nr = TF.NR_PAGES + (BUCKET_PARTNER if far else 0)
    top = rng.randint(3, 8)
    placement = [2] * nr
    for i in rng.sample(range(TF.NR_PAGES), rng.randint(0, 3)):
        placement[i] = i % 2
    # Lower tier: a roomy CXL node, or one exactly as big as its initial pages (demotion
    # then fills it), optionally followed by a second lower-tier node (where demotion goes
    # next). The fuzzer draws the same shapes (tier_configs).
    n2 = placement.count(2)
    lower = [NodeConfig(n2 if rng.random() < 0.4 else max(n2, 40), False, False)]
    if rng.random() < 0.4:
        lower.append(NodeConfig(rng.choice((2, 40)), False, False))
    nodes = (NodeConfig(top, True, True, rng.randint(0, 1)), NodeConfig(top, True, True, 0),
             *lower)
    fmax = {"pghot-v6-default": 3, "pghot-v6-precise": 7, "pghot-v3": 7}.get(variant, 2)
    return TierConfig(
        variant=variant, nodes=nodes, placement=tuple(placement), page_shift=20,
        promote_rate_limit_MBps=rng.choice((1, 2, 65536)),
        enough_floor_pages=rng.choice((0, 2, 100)),
        freq_window_ms=rng.choice((None, 100, 3000)),
        freq_threshold=rng.randint(1, min(fmax, 3)),
        pghot_target_nid=rng.randint(0, 1), pages_per_section=8, kmigrated_batch_nr=2,
        hot_threshold_ms=rng.choice((1000, 200)),
        scan_period_max_ms=rng.choice((60000, 2000)),
        kpromoted_as_posted=rng.random() < 0.5,
        chmu_counters=4, chmu_hotlist=3, chmu_downsample=rng.randint(0, 1),
        chmu_epoch_mode=rng.random() < 0.5, chmu_counter_bits=rng.choice((2, 16)),
        chmu_unit_order=rng.randint(0, 1))


def _promoter_nodes(cfg: TierConfig) -> list[int]:
    """Nodes whose promotion pass does something: kmigrated runs on lower-tier nodes,
    kpromoted on nodes with CPUs."""
    kmigrated = cfg.variant in ("pghot-v3", "pghot-v6-default", "pghot-v6-precise")
    return [nid for nid, n in enumerate(cfg.nodes)
            if (not n.toptier if kmigrated else n.has_cpu)]


def run_program(variant: str, seed: int, steps: int = 80,
                observe: Callable[[Any], None] | None = None) -> str | None:
    """One seeded lockstep program; the first failure of the TIER checks, or None.

    ``observe(state)`` sees the spec state after every step (the invariant tests use it to
    show that the states reached are not trivial).
    """
    rng = random.Random(f"{variant}/{seed}")
    far = variant == "kpromoted-v0" and seed % 4 == 3
    cfg = random_config(rng, variant, far)
    m = TF.TierLockstep()
    m.init_machine(cfg)
    # Accessing nodes as the fuzzer draws them: the CPU nodes, the first lower-tier node (whose
    # own pages' accesses are dropped), no node. The second lower-tier node has no CPUs, so
    # no access comes from it (TIER-PROP-001 assumes an accessing node is a CPU's node).
    nodes = [0, 1, 2, NUMA_NO_NODE]
    pool = list(range(TF.NR_PAGES))
    if far:
        pool += [BUCKET_PARTNER + p for p in pool]
    base = pool if not far else SHARED if seed % 8 == 3 else NEIGHBOURS
    hot = rng.sample(base, min(len(base), rng.choice((1, 2, 3, 6))))
    if far:  # bucket partners hot together
        hot += [p + BUCKET_PARTNER for p in hot]
    fixed_nid = rng.choice(nodes) if rng.random() < 0.5 else None
    if far:  # partners recorded for the same kpromoted thread (a node with CPUs)
        fixed_nid = rng.choice((0, 1))
    promoters = _promoter_nodes(cfg) or [0]

    def page() -> int:
        return rng.choice(hot) if rng.random() < 0.75 else rng.choice(pool)

    def nid() -> int:
        return fixed_nid if fixed_nid is not None else rng.choice(nodes)

    weights = {"tick": 20, "access": 35, "batch": 10, "scan": 10 if variant == "numab2" else 0,
               "promote": 15, "demote": 10}
    kinds, w = list(weights), list(weights.values())
    for i in range(steps):
        kind = rng.choices(kinds, w)[0]
        try:
            if kind == "tick":
                m.tick(rng.choice(TF.TIME_STEPS))
            elif kind == "access":
                m.record_access(page(), nid(), rng.randrange(4))
            elif kind == "batch":
                m.access_batch([(page(), nid(), rng.choice(TF.TIME_STEPS[:8]))
                                for _ in range(rng.randint(1, 12))], rng.randrange(4))
            elif kind == "scan":
                m.numa_scan([page() for _ in range(rng.randint(1, 8))])
            elif kind == "promote":
                m.promote_pass(rng.choice(promoters) if rng.random() < 0.85
                               else rng.randrange(len(cfg.nodes)))
            else:
                assert m.state is not None
                top = [p for p, n in enumerate(m.state.node_of) if cfg.toptier(n)]
                m.demote(rng.choice(top) if top and rng.random() < 0.85 else page())
            m.lockstep()
        except AssertionError as e:
            return f"lockstep {variant} seed {seed} step {i} ({kind}): {str(e)[:300]}"
        if observe is not None:
            observe(m.state)
    return None


def lockstep_programs(variants: tuple[str, ...], seeds: int = 60, steps: int = 80,
                      seconds: float | None = None) -> str | None:
    """Seeded programs on each variant in turn (seed-major, so every variant is tried
    early); the first failure, or None. ``seconds`` bounds the search."""
    start = time.monotonic()
    for seed in range(seeds):
        for v in variants:
            found = run_program(v, seed, steps)
            if found:
                return found
            if seconds is not None and time.monotonic() - start > seconds:
                return None
    return None


def lockstep_fuzz(fuzz_seconds: float) -> str | None:
    from checker.fuzz import run_fuzz

    res = run_fuzz("reference", seconds=fuzz_seconds, seed=0, shrink_seconds=2, area="tier")
    if res.failure is None:
        return None
    return "lockstep fuzz: " + res.failure.strip().splitlines()[0][:300]


def run_checks_for(variants: tuple[str, ...]) -> Callable[[float], str | None]:
    """The TIER checks of a twin whose rule applies to ``variants``."""
    def check(fuzz_seconds: float) -> str | None:
        try:
            found = lockstep_programs(variants, seconds=max(fuzz_seconds, 5.0))
        except Hang:
            raise
        except Exception as e:  # the twin broke the spec's own preconditions
            return f"exception: {type(e).__name__}: {e}"
        return found or lockstep_fuzz(fuzz_seconds)
    return check


def baseline(seeds: int = 60) -> list[str]:
    """The seeded programs without a twin, on every variant, run to the end: they must find
    nothing, or a catch means nothing."""
    return [f for v in TIER_VARIANTS for s in range(seeds) if (f := run_program(v, s))]


# --- the twins ---------------------------------------------------------------------------

def _kpromoted_keeps_cold(orig: Callable[..., Any]) -> Callable[..., Any]:
    """TIER-OP-002 without the drop: a record that fails the test stays in the hash."""
    def twin(w: Any, nid: int, now: int) -> list[int]:
        kept = {p: r for p, r in w.records.items() if r.hot_node == nid}
        promoted = orig(w, nid, now)
        for p, r in kept.items():
            if p not in w.records and p not in promoted:
                w.records[p] = r
        return list(promoted)
    return twin


def _bucket_oldest_first(orig: Callable[..., Any]) -> Callable[..., Any]:
    """Each bucket walked oldest record first (as if records were added at the hlist's tail):
    the walk sorts by (bucket, -seq), so negating every seq for the pass reverses only the
    in-bucket order."""
    import attrs

    def twin(w: Any, nid: int, now: int) -> list[int]:
        seqs = {p: r.seq for p, r in w.records.items()}
        for p, r in seqs.items():
            w.records[p] = attrs.evolve(w.records[p], seq=-r)
        try:
            return list(orig(w, nid, now))
        finally:
            for p, r in w.records.items():
                w.records[p] = attrs.evolve(r, seq=seqs[p])
    return twin


def _hash_one_bit_short(orig: Callable[..., Any]) -> Callable[..., Any]:
    """hash_min(pfn, 15): half the buckets, neighbouring pairs merged."""
    return lambda pfn: hash_64(pfn, 15)


def _kmigrated_test_bit(orig: Callable[..., Any]) -> Callable[..., Any]:
    """test_bit for test_and_clear_bit: the walked hot sections stay marked."""
    def twin(w: Any, nid: int, now: int) -> list[tuple[int, int, str]]:
        walked = set(w.hot_sections) if nid in w.kmigrated_activate else set()
        out = orig(w, nid, now)
        w.hot_sections |= {s for s in walked if s * w.config.pages_per_section
                           < w.config.nr_pages}
        return list(out)
    return twin


def _v1_node_change_ignored(orig: Callable[..., Any]) -> Callable[..., Any]:
    """The record's window restarts on time only: as if the accessing node never changed."""
    import attrs

    def twin(w: Any, pfn: int, nid: int, src: int, now: int) -> int:
        rec = w.records.get(pfn)
        if rec is not None and nid != NUMA_NO_NODE and rec.hot_node != nid:
            w.records[pfn] = attrs.evolve(rec, hot_node=nid)
        return int(orig(w, pfn, nid, src, now))
    return twin


def _v1_extract_keeps_hash(orig: Callable[..., Any]) -> Callable[..., Any]:
    """phi_heap_extract without the hash deletion: an extracted record stays in the hash."""
    def twin(w: Any, nid: int, now: int) -> list[int]:
        members = {p: w.records[p] for p in w.heaps[nid] if p in w.records} \
            if nid < len(w.heaps) else {}
        out = orig(w, nid, now)
        for p, r in members.items():
            w.records.setdefault(p, r)
        return list(out)
    return twin


def _fault_forgets_time(orig: Callable[..., Any]) -> Callable[..., Any]:
    """The hint fault reads the access time but does not store the fault's time."""
    def twin(w: Any, page: int, nid: int, now: int) -> Any:
        had = page in w.access_time
        old = w.access_time.get(page)
        out = orig(w, page, nid, now)
        if had:
            w.access_time[page] = old
        else:
            w.access_time.pop(page, None)
        return out
    return twin


def _scan_includes_toptier(orig: Callable[..., Any]) -> Callable[..., Any]:
    """The tiering scan does not skip top-tier pages."""
    from spec.tiering import jiffies_to_msecs

    def twin(w: Any, pages: list[int], now: int) -> None:
        now_ms = jiffies_to_msecs(now, w.config.hz)
        for page in pages:
            w.check_page(page)
            w.prot_none.add(page)
            w.access_time[page] = now_ms & mask(w.config.access_time_bits)
            w.count("numa_pte_updates")
    return twin


def _chmu_counter_wraps(orig: Callable[..., Any]) -> Callable[..., Any]:
    """The unit's counter overflows to 0 instead of saturating (a plain u16/u2 increment)."""
    def twin(w: Any, pfn: int, src: int) -> int:
        unit = pfn >> w.config.chmu_unit_order
        before = w.chmu_counters.get(unit)
        out = orig(w, pfn, src)
        top = mask(w.config.chmu_counter_bits)
        if before == top and w.chmu_counters.get(unit) == top:
            w.chmu_counters[unit] = 0
        return int(out)
    return twin


def _chmu_epoch_keeps_counters(orig: Callable[..., Any]) -> Callable[..., Any]:
    """The epoch ends without clearing the counters."""
    def twin(w: Any, now: int) -> list[tuple[int, int, str]]:
        counters = dict(w.chmu_counters)
        out = orig(w, now)
        if w.config.chmu_epoch_mode:
            w.chmu_counters.update(counters)
        return list(out)
    return twin


def _demote_into_full_node(orig: Callable[..., Any]) -> Callable[..., Any]:
    """next_demotion_node without the room test: the first lower-tier node, full or not."""
    from spec.tier_state import TierError, TierWork

    def twin(s: Any, pfn: int) -> tuple[Any, int | None]:
        w = TierWork(s)
        w.check_page(pfn)
        src = w.node_of[pfn]
        if not s.config.toptier(src):
            raise TierError(f"page {pfn} is on lower-tier node {src}: nothing to demote")
        nid = next(n for n, node in enumerate(s.config.nodes) if not node.toptier)
        w.node_of[pfn] = nid
        w.pgdat[src]["pgdemote"] += 1
        w.count("pgdemote_kswapd")
        return w.freeze(), nid
    return twin


def _threshold_needs_three(orig: Callable[..., Any]) -> Callable[..., Any]:
    """``frequency > KPRMOTED_FREQ_THRESHOLD`` for ``>=``: a record needs three accesses."""
    def twin(folio_nid: Any, hot_node: Any, last_update: Any, frequency: Any, now: Any,
             window_jiffies: Any) -> Any:
        return orig(folio_nid, hot_node, last_update, frequency - 1, now, window_jiffies)
    return twin


def _bucket_without_hash(orig: Callable[..., Any]) -> Callable[..., Any]:
    """The bucket is the pfn's low 16 bits (hash_min skipped): buckets walk in pfn order."""
    return lambda pfn: pfn & mask(16)


def _layouts_64_jiffy_buckets(orig: dict[str, Any]) -> dict[str, Any]:
    """Default-mode time buckets of 64 jiffies (``jiffies >> 6``) instead of 128.

    A first twin, a 9-bit precise-mode nid field, survived and is equivalent: the model's
    machines have at most 4 nodes, so the nid never reaches bit 9 (the kernel's NODES_SHIFT
    is 10 on x86-64, where it would matter).
    """
    import attrs

    out = dict(orig)
    out["pghot-v6-default"] = attrs.evolve(orig["pghot-v6-default"], time_bucket_shift=6)
    return out


def _v2_frequency_saturates(orig: Callable[..., Any]) -> Callable[..., Any]:
    """The v2 increment capped at the field's 7 (what v3 did), not the posted wrap to 0."""
    return lambda freq: ite(ult(freq, mask(3)), freq + 1, freq)


def _free_space_off_by_one(orig: Callable[..., Any]) -> Callable[..., Any]:
    """``free >= promo_wmark + enough_wmark`` for ``>``."""
    return lambda free, promo_wmark, enough_wmark: orig(free + 1, promo_wmark, enough_wmark)


def _threshold_half_step(orig: Callable[..., Any]) -> Callable[..., Any]:
    """The threshold moves by ref_th / 16 (the ``* 2`` forgotten), not ref_th * 2 / 16."""
    def twin(th_cur: Any, ref_th: Any, diff_cand: Any, ref_cand: Any) -> Any:
        unit = udiv(ref_th, 16)
        th = ite(th_cur == 0, ref_th, th_cur)
        hi = ugt(diff_cand, udiv(ref_cand * 11, 10))
        lo = ult(diff_cand, udiv(ref_cand * 9, 10))
        return ite(hi, umax(usub(th, unit, 32), unit), ite(lo, umin(th + unit, ref_th * 2), th))
    return twin


def _balanced_off_by_one(orig: Callable[..., Any]) -> Callable[..., Any]:
    """``free >= high_wmark + nr_pages`` for ``>``: the last page above the mark is taken."""
    return lambda free, high_wmark, nr_pages: orig(free + 1, high_wmark, nr_pages)


def _twin(rule_id: str, target: str, make: Callable[..., Any], doc: str) -> Twin:
    # The variants are read now, not while a twin is installed: importing a module then
    # (spec.rules.load_all) would bind the twin in it for good.
    from spec.rules import RULES
    return Twin((rule_id,), target, make, doc, check=run_checks_for(RULES[rule_id].variants))


TWINS: dict[str, Twin] = {t.rules[0]: t for t in (
    _twin("TIER-OP-002", "spec.kpromoted:kpromoted_migrate", _kpromoted_keeps_cold,
          "kpromoted keeps the records that fail the promotion test (cold is not forgotten)"),
    _twin("TIER-OP-012", "spec.pghot:kmigrated_do_work", _kmigrated_test_bit,
          "kmigrated tests the hot-section bits without clearing them"),
    _twin("TIER-OP-013", "spec.pghot:pghot_v1_record_access", _v1_node_change_ignored,
          "a change of accessing node does not restart the record's window"),
    _twin("TIER-OP-014", "spec.pghot:pghot_v1_kpromoted_migrate", _v1_extract_keeps_hash,
          "a record extracted from the heap stays in the hash"),
    _twin("TIER-OP-020", "spec.numab:numab2_hint_fault", _fault_forgets_time,
          "the hint fault does not store its time in the folio"),
    _twin("TIER-OP-021", "spec.numab:numa_scan", _scan_includes_toptier,
          "the tiering scan makes top-tier pages PROT_NONE too"),
    _twin("TIER-OP-030", "spec.chmu:chmu_record_access", _chmu_counter_wraps,
          "a CHMU counter at its maximum wraps to 0 instead of saturating"),
    _twin("TIER-OP-031", "spec.chmu:chmu_promote", _chmu_epoch_keeps_counters,
          "the CHMU epoch ends without clearing its counters"),
    _twin("TIER-OP-040", "spec.tiering:demote", _demote_into_full_node,
          "demotion goes to the first lower-tier node even when it is full"),
    _twin("TIER-POL-002", "spec.kpromoted:page_should_be_promoted", _threshold_needs_three,
          "the promotion test needs frequency > 2 (off by one)"),
    _twin("TIER-POL-003", "spec.kpromoted:kpromoted_bucket", _bucket_without_hash,
          "the hash bucket is the pfn's low 16 bits (no hash_64)"),
    _twin("TIER-POL-010", "spec.pghot:LAYOUTS", _layouts_64_jiffy_buckets,
          "default-mode records bucket time by 64 jiffies (off-by-one shift)"),
    _twin("TIER-POL-012", "spec.pghot:v2_next_frequency", _v2_frequency_saturates,
          "the v2 frequency saturates at 7 instead of wrapping to 0"),
    _twin("TIER-POL-020", "spec.numab:free_space_enough", _free_space_off_by_one,
          "the free-space bypass applies at free == promo_wmark + enough_wmark (>=)"),
    _twin("TIER-POL-022", "spec.numab:adjust_threshold", _threshold_half_step,
          "the adaptive threshold moves by ref_th/16 instead of 2*ref_th/16"),
    _twin("TIER-POL-024", "spec.numab:migrate_balanced", _balanced_off_by_one,
          "a promotion may take the target down to exactly its high watermark (>=)"),
)}


#: Twins beyond one per rule, both observed only by the machines with a far block of pages
#: (BUCKET_PARTNER): the in-bucket order of TIER-POL-003, carried out by the TIER-OP-002
#: walk, and a hash one bit short.
MORE_TWINS: dict[str, Twin] = {
    "TIER-POL-003 in-bucket order": Twin(
        ("TIER-POL-003", "TIER-OP-002"), "spec.kpromoted:kpromoted_migrate",
        _bucket_oldest_first, "kpromoted walks each hash bucket oldest record first",
        check=run_checks_for(("kpromoted-v0",))),
    "TIER-POL-003 one bit short": Twin(
        ("TIER-POL-003",), "spec.kpromoted:kpromoted_bucket", _hash_one_bit_short,
        "the hash bucket is hash_64(pfn, 15) (32,768 buckets)",
        check=run_checks_for(("kpromoted-v0",))),
}


def catch(rule_id: str, fuzz_seconds: float = 5.0) -> dict[str, Any]:
    """Run the TIER checks with the rule's twin installed; say what caught it, how fast."""
    return catch_twin(TWINS[rule_id], fuzz_seconds)


def catch_twin(twin: Twin, fuzz_seconds: float = 5.0) -> dict[str, Any]:
    assert twin.check is not None
    return spec_twins.catch_twin(twin, fuzz_seconds)
