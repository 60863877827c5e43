"""Small machines for the TIER tests (not a test module)."""

from __future__ import annotations

from typing import Any

from spec.tier_state import NodeConfig, TierConfig


def config(variant: str, pages: int = 16, fast: int = 8, **kw: Any) -> TierConfig:
    """Node 0 and 1: top tier with CPUs, ``fast`` pages each; node 2: a CXL node of 64 pages.

    Every page starts on node 2. ``enough_floor_pages`` defaults to 1000 so the free-space
    bypass stays off unless a test asks for it.
    """
    kw.setdefault("enough_floor_pages", 1000)
    nodes = (NodeConfig(fast, True, True), NodeConfig(fast, True, True),
             NodeConfig(64, False, False))
    placement = kw.pop("placement", tuple([2] * pages))
    return TierConfig(variant=variant, nodes=nodes, placement=placement, **kw)
