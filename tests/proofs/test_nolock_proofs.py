"""The NOLOCK proof obligations, held to ``proofs/manifest.json``; each test names its rules."""

from __future__ import annotations

import pytest

import spec.constants as C
from proofs.runner import COUNTEREXAMPLE, PROVED
from spec.nolock import gfpflags_allow_spinning

from .helpers import run_group


def test_contexts_nest_NOLOCK_POL_001() -> None:
    rs = run_group("nolock.context.stack_order", "nolock.context.nonvacuous")
    # (None + 4 levels) x irqs on/off x 3 interrupting levels x NMI on stack or not, less
    # the 6 impossible idle-CPU cases with an NMI on the stack: 5*2*3*2 - 6 = 54.
    assert rs["nolock.context.stack_order"].detail.startswith("54 cases")
    assert rs["nolock.context.nonvacuous"].verdict == PROVED


def test_spinning_and_the_transhuge_light_edge_NOLOCK_POL_002() -> None:
    rs = run_group("nolock.gfp.composites_spin", "nolock.gfp.every_composite_spins")
    # Ten composites (13 GFP_* names less GFP_DMA, GFP_DMA32, GFP_TRANSHUGE_LIGHT) and the
    # nolock mask.
    assert rs["nolock.gfp.composites_spin"].detail.startswith("11 cases")
    edge = rs["nolock.gfp.every_composite_spins"]
    assert edge.verdict == COUNTEREXAMPLE
    assert edge.counterexample == "gfpflags_allow_spinning(Gfp('GFP_TRANSHUGE_LIGHT'))"
    # GFP_TRANSHUGE_LIGHT is built with & ~__GFP_RECLAIM (include/linux/gfp_types.h).
    assert not C.GFP_TRANSHUGE_LIGHT & C.__GFP_RECLAIM
    assert gfpflags_allow_spinning(C.GFP_TRANSHUGE_LIGHT) is False


@pytest.mark.seeded_bug
def test_flipped_spinning_test_is_caught_NOLOCK_POL_002() -> None:
    r = run_group("nolock.gfp.flipped_twin")["nolock.gfp.flipped_twin"]
    assert r.verdict == COUNTEREXAMPLE and r.counterexample is not None
    assert r.counterexample.endswith("flipped=True)")


def test_refusals_NOLOCK_OP_001() -> None:
    r = run_group("nolock.refuses.orders_and_contexts")["nolock.refuses.orders_and_contexts"]
    assert r.verdict == PROVED
