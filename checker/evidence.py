"""What checks each rule: positive and negative evidence, collected from the checkout.

*Positive* evidence is a check that runs the rule and passes: a test that cites the rule ID
(in its name, its body, its decorators or a module-level table it uses), a proof obligation
expected to be proved, an explorer property, an oracle corpus. *Negative* evidence shows
that a check of the rule can fail: a test marked ``@pytest.mark.seeded_bug`` (a deliberately
broken implementation, variant, state or input that the check must reject) citing the rule,
directly or through a registry it uses (for example ``checker.mutants.MUTANTS``, whose
mutants name the rules they break), or a proof's broken twin expected to yield a
counterexample.

The collector reads test sources with :mod:`ast` (it does not run them); the tests
themselves run in CI, so evidence here means "a test of this kind exists and is part of the
suite", and the suite being green means it holds.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

ROOT = Path(__file__).resolve().parent.parent
ID = re.compile(r"(?<![A-Za-z])(ALLOC|NOLOCK|KSM|TIER|CORE)[-_](INV|OP|POL|PROP)[-_](\d{3})(?!\d)")

#: Evidence kinds, in the coverage matrix's column order.
KINDS = ("test", "seeded-bug", "proof", "proof-twin", "explorer", "oracle")


@attrs.frozen(order=True)
class Evidence:
    rule: str
    kind: str
    where: str
    negative: bool

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "where": self.where, "negative": self.negative}


def ids_in(text: str) -> set[str]:
    return {f"{a}-{k}-{n}" for a, k, n in ID.findall(text)}


def _ids_in_object(obj: Any, depth: int = 0) -> set[str]:
    """Rule IDs named by a registry object: dict keys and values, docstrings, ``rules``."""
    if depth > 3:
        return set()
    if isinstance(obj, str):
        return ids_in(obj)
    out: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            out |= _ids_in_object(k, depth + 1) | _ids_in_object(v, depth + 1)
        return out
    if isinstance(obj, (list, tuple, set, frozenset)):
        for v in obj:
            out |= _ids_in_object(v, depth + 1)
        return out
    for attr in ("rules", "__rules__"):
        val = getattr(obj, attr, None)
        if isinstance(val, (str, tuple, list, set, frozenset)):
            out |= _ids_in_object(val, depth + 1)
    doc = getattr(obj, "__doc__", None)
    if isinstance(doc, str) and (callable(obj) or isinstance(obj, type)):
        out |= ids_in(doc)
    if attrs.has(type(obj)):
        for f in attrs.fields(type(obj)):
            out |= _ids_in_object(getattr(obj, f.name), depth + 1)
    return out


def _marked_seeded(decorators: Iterable[ast.expr]) -> bool:
    return any("seeded_bug" in ast.unparse(d) for d in decorators)


def _kind_of(path: str, name: str, negative: bool) -> str:
    low = f"{path}::{name}".lower()
    if negative:
        return "seeded-bug"
    if "/proofs/" in low or "prove" in low:
        return "proof"
    if "explor" in low:
        return "explorer"
    if "oracle" in low or "corpus" in low:
        return "oracle"
    return "test"


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def _imports(tree: ast.Module) -> dict[str, tuple[str, str]]:
    """Names imported with ``from X import NAME`` at module level: name -> (module, attr)."""
    out: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                out[alias.asname or alias.name] = (node.module, alias.name)
    return out


def _registry_ids(module: str, attr: str) -> set[str]:
    if not module.startswith(("checker", "spec", "reference", "proofs")):
        return set()
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return set()
    if callable(obj) and not isinstance(obj, type) and not attrs.has(type(obj)):
        return set()  # a function's docstring describes it, it is not a registry of bugs
    return _ids_in_object(obj)


def from_tests(root: Path = ROOT) -> list[Evidence]:
    out: list[Evidence] = []
    for path in sorted((root / "tests").rglob("test_*.py")):
        rel = str(path.relative_to(root))
        source = path.read_text(errors="replace")
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        module_seeded = any(
            isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                              for t in n.targets)
            and "seeded_bug" in ast.unparse(n.value) for n in tree.body)
        imports = _imports(tree)
        # Tests (functions and methods), helpers, and module-level tables.
        tests: list[tuple[str, ast.AST, bool]] = []
        named: dict[str, set[str]] = {}
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                seg = ids_in(ast.get_source_segment(source, node) or "")
                seg |= ids_in(" ".join(ast.unparse(d) for d in node.decorator_list))
                if node.name.startswith("test"):
                    tests.append((node.name, node,
                                  module_seeded or _marked_seeded(node.decorator_list)))
                named[node.name] = seg
            elif isinstance(node, ast.ClassDef):
                cls_seeded = module_seeded or _marked_seeded(node.decorator_list)
                for item in node.body:
                    if (isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
                            and item.name.startswith("test")):
                        tests.append((f"{node.name}::{item.name}", item,
                                      cls_seeded or _marked_seeded(item.decorator_list)))
                named[node.name] = ids_in(ast.get_source_segment(source, node) or "")
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                ids = ids_in(ast.get_source_segment(source, node) or "")
                for t in targets:
                    if isinstance(t, ast.Name):
                        named[t.id] = ids
                        if t.id.startswith("Test") and ids:
                            tests.append((t.id, node, module_seeded))
        used_by_tests: set[str] = set()
        for name, tnode, seeded in tests:
            own = ids_in(ast.get_source_segment(source, tnode) or "")
            if isinstance(tnode, (ast.FunctionDef, ast.AsyncFunctionDef)):
                own |= ids_in(" ".join(ast.unparse(d) for d in tnode.decorator_list))
            refs = _names(tnode)
            if isinstance(tnode, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for d in tnode.decorator_list:
                    refs |= _names(d)
            for ref in refs:
                if ref in named and ref != name:
                    own |= named[ref]
                    used_by_tests.add(ref)
                if seeded and ref in imports:
                    own |= _registry_ids(*imports[ref])
            kind = _kind_of(rel, name, seeded)
            out += [Evidence(rid, kind, f"{rel}::{name}", seeded) for rid in sorted(own)]
        # Citations no test uses (module docstrings, unused helpers): the module as a whole.
        loose = ids_in(ast.get_docstring(tree) or "")
        for ref, ids in named.items():
            if ref not in used_by_tests and not any(ref == t[0] for t in tests):
                loose |= ids
        out += [Evidence(rid, _kind_of(rel, "", module_seeded), rel, module_seeded)
                for rid in sorted(loose)]
    return out


def from_proof_manifest(root: Path = ROOT) -> list[Evidence]:
    """Obligations of proofs/manifest.json: expected ``proved`` is positive evidence, an
    expected ``counterexample`` of a broken twin is negative evidence."""
    path = root / "proofs" / "manifest.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    items = data.get("obligations", data) if isinstance(data, dict) else data
    if isinstance(items, dict):
        items = [{"name": k, **v} for k, v in items.items()]
    out = []
    for ob in items:
        if not isinstance(ob, dict):
            continue
        expected = str(ob.get("expected", ob.get("verdict", "")))
        negative = expected == "counterexample"
        name = str(ob.get("name", "?"))
        for rid in ob.get("rules", []):
            out.append(Evidence(rid, "proof-twin" if negative else "proof",
                                f"proofs/manifest.json:{name} (expected {expected})",
                                negative))
    return out


def collect(root: Path = ROOT) -> dict[str, list[Evidence]]:
    """Evidence by rule ID (IDs that no registered rule has are kept: the caller reports
    them as citations of unregistered rules)."""
    by_rule: dict[str, list[Evidence]] = {}
    for e in sorted(set(from_tests(root) + from_proof_manifest(root))):
        by_rule.setdefault(e.rule, []).append(e)
    return by_rule


def coverage(rules: Iterable[Any], evidence: dict[str, list[Evidence]]) -> list[dict[str, Any]]:
    """One row per rule: counts per evidence kind, and what is missing."""
    rows = []
    for r in rules:
        ev = evidence.get(r.id, [])
        counts = {k: sum(1 for e in ev if e.kind == k) for k in KINDS}
        pos = any(not e.negative for e in ev)
        neg = any(e.negative for e in ev)
        missing = [what for what, ok in (("positive", pos), ("negative", neg)) if not ok]
        rows.append({"id": r.id, **counts, "positive": pos, "negative": neg,
                     "unchecked": r.unchecked, "missing": [] if r.unchecked else missing})
    return rows
