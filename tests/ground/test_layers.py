"""The one-way layers of vtrbench, read from the code's own imports (README, "Layout").

Each module of ``vtrbench/`` belongs to one layer; an import may point down, or sideways inside a
layer, never up, and no two files may import each other (directly or round a circle), also not
through imports inside functions. The other rules README lists: vtrbench imports inside functions
only in ``cli/`` (keeps ``vtrbench --help`` free of torch) or as a listed deprecated re-export;
third-party imports inside functions only for optional dependencies; no module over 600 lines; no
function over 100 lines without a ``# long function:`` comment saying why; no module reaching into
another module's private (``_name``) functions.

Every check reads the source with ``ast``; nothing is imported, so a failing layout cannot hide
behind an import error.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "vtrbench"

# Bottom to top. A module belongs to the first entry whose name equals it or is a package above it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "ground",
        (
            "vtrbench",
            "vtrbench.errors",
            "vtrbench.registry",
            "vtrbench.io",
            "vtrbench._imports",
            "vtrbench.defaults",
            "vtrbench.threads",
            "vtrbench.shard",
        ),
    ),
    ("core", ("vtrbench.config", "vtrbench.tiecounts", "vtrbench.metrics", "vtrbench.results")),
    ("families", ("vtrbench.heads", "vtrbench.losses", "vtrbench.datasets", "vtrbench.cache")),
    ("factory", ("vtrbench.factory", "vtrbench.plugins")),
    ("eval", ("vtrbench.eval", "vtrbench.extract")),
    ("runs", ("vtrbench.runs",)),
    ("report", ("vtrbench.report", "vtrbench.search", "vtrbench.browse")),
    ("top", ("vtrbench.api", "vtrbench.api_args", "vtrbench.demo", "vtrbench.cli", "vtrbench.__main__")),
]

# Deprecated re-exports at the paths of earlier releases (CHANGELOG lists them). They sit above
# everything, and no module of vtrbench may import them.
SHIMS = (
    "vtrbench.runner",
    "vtrbench.train",
    "vtrbench.evaluate",
    "vtrbench.postprocess",
    "vtrbench.ablate",
    "vtrbench.synthetic",
    "vtrbench.tune",
)

# Imports allowed inside a function: the lazy re-exports (module __getattr__) of names that moved,
# above their old module (the factory) or into torch-importing modules that `--help` must not load.
LAZY_REEXPORTS = {
    ("vtrbench.heads.base", "vtrbench.factory"),
    ("vtrbench.losses.base", "vtrbench.factory"),
    ("vtrbench.plugins", "vtrbench.heads.contract"),
    ("vtrbench.plugins", "vtrbench.losses.contract"),
}

# Third-party packages that may be imported inside a function: optional dependencies (extras) and
# the few whose import is slow enough to keep out of a command's start where it is rarely needed.
OPTIONAL = {
    "open_clip",
    "av",
    "PIL",
    "textblob",
    "torchvision",
    "optuna",
    "matplotlib",
    "spacy",
    "sqlalchemy",
}

# Core dependencies a module may still import inside a function, each with its reason.
LAZY_CORE = {
    # reading a cache (browse's thumbnails, inspect) needs only h5py; torch only for the CLIP layers
    # a cache stores for --init clip, and importing it costs ~2.5 s
    ("vtrbench.cache.reader", "torch"),
    # torch._dynamo and torch._inductor (--compile's availability check) take about as long again as
    # torch itself to import (python -X importtime); only a run with --compile needs them
    ("vtrbench.runs.compiled", "torch"),
}

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100
LONG_MARK = "# long function:"


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    lines: list[str]
    top: set[str] = field(default_factory=set)  # vtrbench modules imported at module level
    inner: set[str] = field(default_factory=set)  # ... inside functions
    inner_third_party: set[str] = field(default_factory=set)
    private_uses: list[str] = field(default_factory=list)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(known: set[str], target: str) -> str:
    while target not in known and "." in target:
        target = target.rsplit(".", 1)[0]
    return target


def _read() -> dict[str, Module]:
    mods = {}
    for path in sorted(ROOT.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        mods[_module_name(path)] = Module(_module_name(path), path, ast.parse(text), text.splitlines())
    known = set(mods)
    for m in mods.values():
        in_function: set[int] = set()
        for node in ast.walk(m.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                in_function |= {id(s) for s in ast.walk(node) if isinstance(s, (ast.Import, ast.ImportFrom))}
        aliases: dict[str, str] = {}  # local name -> vtrbench module
        for node in ast.walk(m.tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolve against the package
                    base = m.name.split(".")
                    if m.path.name != "__init__.py":
                        base = base[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                for a in node.names:
                    full = f"{mod}.{a.name}"
                    if full in known:  # `from vtrbench.runs import train`
                        targets.append(full)
                        aliases[a.asname or a.name] = full
                    else:
                        targets.append(mod)
                        private = a.name.startswith("_") and not a.name.startswith("__")
                        if mod.startswith("vtrbench") and private and _resolve(known, mod) != m.name:
                            m.private_uses.append(f"from {mod} import {a.name}")
            else:
                for a in node.names:
                    targets.append(a.name)
                    if a.name.startswith("vtrbench") and a.asname:
                        aliases[a.asname] = a.name
            for t in targets:
                if t.startswith("vtrbench"):
                    t = _resolve(known, t)
                    if t != m.name:
                        (m.inner if id(node) in in_function else m.top).add(t)
                elif id(node) in in_function:
                    m.inner_third_party.add(t.split(".")[0])
        for node in ast.walk(m.tree):  # alias._private(...) on another vtrbench module
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and aliases[node.value.id] != m.name
            ):
                m.private_uses.append(f"{node.value.id}.{node.attr}")
    return mods


MODS = _read()


def layer_of(name: str) -> int:
    if name in SHIMS or any(name.startswith(s + ".") for s in SHIMS):
        return len(LAYERS)
    best = None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (i, len(p))
    assert best is not None, f"{name} belongs to no layer: add it to LAYERS (and README's layout)"
    return best[0]


def _edges(include_lazy: bool = False) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for m in MODS.values():
        for t in m.top | m.inner:
            if include_lazy or (m.name, t) not in LAZY_REEXPORTS:
                out[m.name].add(t)
    return out


def test_every_module_has_a_layer() -> None:
    for name in MODS:
        layer_of(name)


def test_imports_point_down() -> None:
    up = []
    for m in MODS.values():
        for t in sorted(m.top | m.inner):
            if (m.name, t) in LAZY_REEXPORTS:
                continue
            if layer_of(t) > layer_of(m.name):
                up.append(f"{m.name} ({LAYERS[layer_of(m.name)][0]}) imports {t} ({_layer_name(t)})")
    assert not up, "imports that point up a layer:\n" + "\n".join(up)


def _layer_name(name: str) -> str:
    i = layer_of(name)
    return LAYERS[i][0] if i < len(LAYERS) else "deprecated re-export"


def test_nothing_imports_a_deprecated_reexport() -> None:
    users = [
        f"{m.name} imports {t}"
        for m in MODS.values()
        if layer_of(m.name) < len(LAYERS)
        for t in sorted(m.top | m.inner)
        if layer_of(t) == len(LAYERS)
    ]
    assert not users, "\n".join(users)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_circles_between_files() -> None:
    # A package's __init__ re-exporting its own modules is not a circle of files that import each
    # other for their work; everything else is.
    graph = _edges()
    for m, targets in graph.items():
        graph[m] = {t for t in targets if not (MODS[m].path.name == "__init__.py" and t.startswith(m + "."))}
    assert _cycles(graph) == []


def test_the_check_finds_a_circle() -> None:
    # the detector itself: a two-file circle and a three-file one are found, a chain is not
    assert _cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}}) == []


def test_vtrbench_imports_inside_functions_only_in_cli() -> None:
    bad = [
        f"{m.name} imports {t} inside a function"
        for m in MODS.values()
        if not (m.name == "vtrbench.cli" or m.name.startswith("vtrbench.cli."))
        for t in sorted(m.inner)
        if (m.name, t) not in LAZY_REEXPORTS
    ]
    assert not bad, "\n".join(bad)


def test_third_party_imports_inside_functions_are_optional_dependencies() -> None:
    bad = [
        f"{m.name} imports {t} inside a function"
        for m in MODS.values()
        if not (m.name == "vtrbench.cli" or m.name.startswith("vtrbench.cli."))
        for t in sorted(m.inner_third_party - OPTIONAL)
        if (m.name, t) not in LAZY_CORE
    ]
    assert not bad, "\n".join(bad)


def test_no_module_reaches_into_another_modules_privates() -> None:
    bad = [f"{m.name}: {use}" for m in MODS.values() for use in m.private_uses]
    assert not bad, "\n".join(bad)


def test_modules_are_small() -> None:
    big = [f"{m.name}: {len(m.lines)} lines" for m in MODS.values() if len(m.lines) > MAX_MODULE_LINES]
    assert not big, "\n".join(big)


def test_functions_are_short_or_say_why() -> None:
    long = []
    for m in MODS.values():
        for node in ast.walk(m.tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            n = node.end_lineno - node.lineno + 1
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            comments = []  # the comment block right above the function (or its decorators)
            i = first - 2
            while i >= 0 and m.lines[i].strip().startswith("#"):
                comments.append(m.lines[i].strip())
                i -= 1
            if n > MAX_FUNCTION_LINES and not any(c.startswith(LONG_MARK) for c in comments):
                long.append(f"{m.name}.{node.name}: {n} lines")
    assert not long, "\n".join(long)


@pytest.mark.parametrize(
    "family, concrete",
    [
        ("heads", "vtrbench.heads.camoe"),
        ("losses", "vtrbench.losses.dsl"),
        ("datasets", "vtrbench.datasets.msrvtt"),
    ],
)
def test_a_family_base_imports_neither_its_members_nor_plugins(family: str, concrete: str) -> None:
    base = MODS[f"vtrbench.{family}.base"]
    members = {n for n in MODS if n.startswith(f"vtrbench.{family}.")} - {base.name}
    assert concrete in members
    reached = (base.top | base.inner) - {t for s, t in LAZY_REEXPORTS if s == base.name}
    assert not reached & (members - {f"vtrbench.{family}.listing", f"vtrbench.{family}.strings"})
    assert "vtrbench.plugins" not in reached


def test_registry_is_ground_and_imports_only_errors() -> None:
    assert MODS["vtrbench.registry"].top | MODS["vtrbench.registry"].inner == {"vtrbench.errors"}
