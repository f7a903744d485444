"""The layout's import rules (docs/decisions.md, "One layout: packages by job"), checked on the source.

Every `import` and `from ... import` of our own packages counts, at module
level or inside a function, since a lazy import is still a dependency:

* `processors/` imports none of our other packages: it is the pure core that
  the live worker and the batch replay both call;
* `schemas/` imports none either: it is the contract library;
* `gateway/` does not import the worker (`streams/`), the simulators or the CLI;
* nothing imports the CLI (`cli/`) but the CLI itself: commands call library
  functions, never the other way round;
* the packages import one another without a cycle, and so do the modules at
  module level (lazy imports may break a module cycle; a package cycle never).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "schemas", "processors", "formats", "replay", "simulation", "streams", "sinks", "gateway", "cli")


def _imports() -> list[tuple[str, str, bool]]:
    """(importing module, imported module, at module level) for every import of one of our packages."""
    out = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            tree = ast.parse(path.read_text(), str(path))
            top_level = {id(n) for n in tree.body}
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    # `from pkg import mod` imports pkg.mod when mod is a module of ours
                    names = [f"{node.module}.{a.name}" if (ROOT / node.module.replace(".", "/") / f"{a.name}.py").exists()
                             else node.module for a in node.names]
                else:
                    continue
                for name in names:
                    if name.split(".")[0] in PACKAGES:
                        out.append((module, name, id(node) in top_level))
    return out


IMPORTS = _imports()


def _package(module: str) -> str:
    return module.split(".")[0]


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_the_rules_see_the_imports():
    # The checks below mean something only if imports are found: the worker's loop imports the processors.
    assert ("streams.pipeline", "processors.batch", True) in IMPORTS
    assert any(_package(a) == "cli" and _package(b) == "streams" for a, b, _ in IMPORTS)


def test_processors_and_schemas_import_none_of_our_other_packages():
    bad = [(a, b) for a, b, _ in IMPORTS if _package(a) in ("processors", "schemas") and _package(b) != _package(a)]
    assert bad == []


def test_the_gateway_does_not_import_the_worker_the_simulators_or_the_cli():
    bad = [(a, b) for a, b, _ in IMPORTS if _package(a) == "gateway" and _package(b) in ("streams", "simulation", "cli")]
    assert bad == []


def test_nothing_imports_the_cli():
    bad = [(a, b) for a, b, _ in IMPORTS if _package(b) == "cli" and _package(a) != "cli"]
    assert bad == []


def test_packages_have_no_import_cycle():
    edges: dict[str, set[str]] = {}
    for a, b, _ in IMPORTS:
        if _package(a) != _package(b):
            edges.setdefault(_package(a), set()).add(_package(b))
    assert _cycle(edges) is None


def test_modules_have_no_import_cycle_at_module_level():
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
               for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for a, b, top in IMPORTS:
        target = b if b in modules else b.rsplit(".", 1)[0] if b.rsplit(".", 1)[0] in modules else None
        if top and target and target != a:
            edges.setdefault(a, set()).add(target)
    assert _cycle(edges) is None
