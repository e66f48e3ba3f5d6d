"""The layout's rules, checked on the source: imports run one way, wings stay apart, no
module borrows another's private names, and importing causalid leaves no trace elsewhere."""

from __future__ import annotations

import ast
from pathlib import Path

import causalid

ROOT = Path(causalid.__file__).resolve().parent
WINGS = ("exchangeable", "lti", "hmm")


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        name = ".".join(rel.parts)
        out[name[: -len(".__init__")] if name.endswith(".__init__") else name] = path
    return out


def _imports(path: Path):
    """(module imported, names taken) for every import in the file, inside functions too."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []


def _graph():
    mods = _modules()
    edges = {m: set() for m in mods}
    for m, path in mods.items():
        for target, names in _imports(path):
            if target in mods and target != m:
                edges[m].add(target)
            for n in names:
                if f"{target}.{n}" in mods and f"{target}.{n}" != m:
                    edges[m].add(f"{target}.{n}")
    return mods, edges


def test_no_two_files_import_each_other_even_inside_functions():
    mods, edges = _graph()
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            # a package and its own submodule (a face re-exporting it) is not a cycle
            if len(comp) > 1 and not (len(comp) == 2 and max(comp).startswith(min(comp) + ".")):
                cycles.append(sorted(comp))

    for v in mods:
        if v not in index:
            visit(v)
    assert not cycles


def test_nothing_imports_the_package_root_and_wings_do_not_import_each_other():
    mods, edges = _graph()
    for m, targets in edges.items():
        assert "causalid" not in targets or m == "causalid", f"{m} imports causalid's root"
        wing = m.split(".")[1] if m.count(".") >= 1 else None
        if wing in WINGS:
            others = {t for t in targets if t.split(".")[1:2] and t.split(".")[1] in WINGS and
                      t.split(".")[1] != wing}
            assert not others, f"{m} imports another wing: {sorted(others)}"
            upward = {t for t in targets if t.startswith(("causalid.families", "causalid.cli", "causalid.design",
                                                          "causalid.datasets"))}
            assert not upward, f"{m} imports from above the wings: {sorted(upward)}"


def test_no_module_takes_another_modules_private_names():
    mods = _modules()
    borrowed = []
    for m, path in mods.items():
        for target, names in _imports(path):
            if target.startswith("causalid") and target != m:
                borrowed += [f"{m} <- {target}.{n}" for n in names if n.startswith("_") and n != "__version__"]
    assert not borrowed
