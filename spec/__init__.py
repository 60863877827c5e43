"""mmspec's specification: small, obvious, slow; the oracle that reviewers audit.

Operations are functions ``op(zone, args) -> (zone', result)`` over immutable states; every
normative statement is a rule with a stable ID (see :mod:`spec.rules`).
"""

from spec.page_alloc import (
    alloc_pages,
    drain_pages,
    free_pages,
    get_page_from_freelist,
    init_zone,
    isolate_pageblock,
    set_knob,
    unisolate_pageblock,
    unreserve_highatomic_pageblock,
)
from spec.zone import Allocation, PerCpuPages, SpecError, Zone, ZoneConfig

__all__ = ["Zone", "ZoneConfig", "PerCpuPages", "Allocation", "SpecError", "init_zone",
           "alloc_pages", "free_pages", "drain_pages", "set_knob", "isolate_pageblock",
           "unisolate_pageblock", "unreserve_highatomic_pageblock", "get_page_from_freelist"]
