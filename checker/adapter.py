"""The adapter protocol: how the checker drives any implementation of the ALLOC core.

An implementation is a mutable object with the spec's operations as methods and an
abstraction function ``abstract()`` that returns the spec's immutable :class:`spec.Zone` for
its current state. The spec itself is wrapped by :class:`SpecAdapter`; the reference
implementation already has this shape; a user plugs in their own allocator by writing a class
with these methods.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import spec
from spec.zone import Zone, ZoneConfig


@runtime_checkable
class AllocImplementation(Protocol):
    def alloc_pages(self, gfp: int, order: int, cpu: int = 0) -> int | None: ...
    def get_page_from_freelist(self, gfp: int, order: int, alloc_flags: int,
                               cpu: int = 0) -> int | None: ...
    def free_pages(self, pfn: int, order: int, cpu: int = 0) -> None: ...
    def drain_pages(self, cpu: int) -> None: ...
    def set_knob(self, name: str, value: int) -> None: ...
    def isolate_pageblock(self, pageblock: int) -> bool: ...
    def unisolate_pageblock(self, pageblock: int) -> bool: ...
    def unreserve_highatomic_pageblock(self, migratetype: int, force: bool) -> bool: ...
    def abstract(self) -> Zone: ...


class SpecAdapter:
    """The spec's functional operations behind the mutable adapter protocol."""

    def __init__(self, config: ZoneConfig) -> None:
        self.zone = spec.init_zone(config)

    def alloc_pages(self, gfp: int, order: int, cpu: int = 0) -> int | None:
        self.zone, page = spec.alloc_pages(self.zone, gfp, order, cpu)
        return page

    def get_page_from_freelist(self, gfp: int, order: int, alloc_flags: int,
                               cpu: int = 0) -> int | None:
        self.zone, page = spec.get_page_from_freelist(self.zone, gfp, order, alloc_flags, cpu)
        return page

    def free_pages(self, pfn: int, order: int, cpu: int = 0) -> None:
        self.zone, _ = spec.free_pages(self.zone, pfn, order, cpu)

    def drain_pages(self, cpu: int) -> None:
        self.zone, _ = spec.drain_pages(self.zone, cpu)

    def set_knob(self, name: str, value: int) -> None:
        self.zone, _ = spec.set_knob(self.zone, name, value)

    def isolate_pageblock(self, pageblock: int) -> bool:
        self.zone, ok = spec.isolate_pageblock(self.zone, pageblock)
        return ok

    def unisolate_pageblock(self, pageblock: int) -> bool:
        self.zone, ok = spec.unisolate_pageblock(self.zone, pageblock)
        return ok

    def unreserve_highatomic_pageblock(self, migratetype: int, force: bool) -> bool:
        self.zone, ok = spec.unreserve_highatomic_pageblock(self.zone, migratetype, force)
        return ok

    def abstract(self) -> Zone:
        return self.zone


def diff_zones(a: Zone, b: Zone, limit: int = 6) -> list[str]:
    """Field-by-field differences between two spec states (for readable failures)."""
    out: list[str] = []
    for field in type(a).__attrs_attrs__:  # type: ignore[attr-defined]
        name = field.name
        va, vb = getattr(a, name), getattr(b, name)
        if va == vb:
            continue
        if name == "free_area":
            for order, (la, lb) in enumerate(zip(va, vb, strict=True)):
                for mt, (xa, xb) in enumerate(zip(la, lb, strict=True)):
                    if xa != xb:
                        out.append(f"free_area[{order}][{mt}]: {list(xa)} != {list(xb)}")
        elif name == "pcp":
            for cpu, (pa, pb) in enumerate(zip(va, vb, strict=True)):
                for f in type(pa).__attrs_attrs__:  # type: ignore[attr-defined]
                    x, y = getattr(pa, f.name), getattr(pb, f.name)
                    if x != y:
                        out.append(f"pcp[{cpu}].{f.name}: {x} != {y}")
        elif name == "allocated":
            only_a = sorted((x.pfn, x.order) for x in va - vb)
            only_b = sorted((x.pfn, x.order) for x in vb - va)
            out.append(f"allocated: only left {only_a[:8]}, only right {only_b[:8]}")
        else:
            out.append(f"{name}: {va} != {vb}")
        if len(out) >= limit:
            break
    return out[:limit]
