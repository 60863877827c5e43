"""Deliberately broken implementations: the fuzzer must catch every one of them."""
from __future__ import annotations

MUTANTS: dict = {}
