"""The architecture as a contract: features talk through services, models and events, never stores.

Every `import` counts, at module level or inside a function: an import moved into a function to dodge
a cycle is still a dependency. `python tests/test_architecture.py` prints the import matrix.
"""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
READ_SIDE = {"zhiban.reports.queries", "zhiban.status.queries", "zhiban.drills.queries", "zhiban.sla.queries"}
# sla.queries: the agent queue, the desk's hot read, joins tickets and organizations in one indexed query.
EDGES = {"api", "views", "cli", "policy_views", "service_views"}  # modules that face the outside
IO = {"sqlalchemy", "fastapi", "starlette", "httpx", "jinja2", "typer", "nats", "alembic", "aiosmtpd", "smtplib"}
INFRA = {"core", "store", "features", "desk"}  # shared by all: no feature's own
IMPURE = {"store", "service", "api", "views", "cli", "jobs", "hooks", "web", "engine", "desk", "handlers"}
# Who may read settings from the environment and hand them over: a feature's hooks and its edges (the desk,
# the root cli and core are not features). Everything else is handed its settings.
COMPOSERS = EDGES | {"hooks", "runner"}  # engine.runner: a bare worker process's entry point, like a cli
SETTINGS_READERS = {"get_settings", "Settings"}  # `Settings()` reads the environment as `get_settings()` does

# Dependencies left to cut, each (importer, imported): the list only shrinks (a stale entry fails).
STORE_ALLOWED: set[tuple[str, str]] = set()
CYCLE_EDGES_ALLOWED: set[tuple[str, str]] = set()


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "zhiban").rglob("*.py"):
        if "migrations" not in path.parts:
            parts = path.relative_to(SRC).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _walk(node: ast.AST, typing_only: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import under `node`, at any depth, and whether it sits in an `if TYPE_CHECKING:` block."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, typing_only
        guarded = isinstance(child, ast.If) and ast.unparse(child.test).endswith("TYPE_CHECKING")
        yield from _walk(child, typing_only or guarded)


@functools.cache
def imports(*, runtime_only: bool = False) -> list[tuple[str, str]]:
    """Every (importer, imported) pair of our modules, whether imported at module level or in a function."""
    modules, pairs = _modules(), []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node, typing_only in _walk(ast.parse(path.read_text(encoding="utf-8"))):
            if typing_only and runtime_only:
                continue
            if isinstance(node, ast.Import):
                pairs += [(name, a.name) for a in node.names]
                continue
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            for a in node.names:  # `from zhiban import engine` imports the module zhiban.engine
                pairs.append((name, f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base))
    return [(a, b) for a, b in pairs if b == "zhiban" or b.startswith(("zhiban.", *IO))]


def feature(module: str) -> str:
    """The feature a module belongs to; the package's own top-level modules (cli, desk, …) stand alone."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(root)"


def is_store(module: str) -> bool:
    return module.endswith(".store") and feature(module) not in INFRA


def store_violations() -> set[tuple[str, str]]:
    """A store is called by its own feature's services only; the read side's queries may read any.

    Names imported under `if TYPE_CHECKING:` only annotate rows a service handed over: they cannot query.
    """
    bad = set()
    for src, dst in imports(runtime_only=True):
        if not is_store(dst) or src in READ_SIDE or (is_store(src) and src != dst):  # a store's FK targets
            continue
        if feature(src) != feature(dst) or src.rpartition(".")[2] in EDGES or feature(src) == "(root)":
            bad.add((src, dst))
    return bad


def model_violations() -> set[tuple[str, str]]:
    """A model is pure: no I/O, no framework, none of our tables, services, edges or processes."""
    return {
        (src, dst)
        for src, dst in imports()
        if src.endswith(".model")
        and (dst.split(".")[0] in IO or dst.rpartition(".")[2] in IMPURE or feature(dst) in IMPURE)
    }


def feature_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for src, dst in imports():
        if dst.split(".")[0] == "zhiban" and feature(src) != feature(dst) and feature(dst) not in INFRA:
            graph[feature(src)].add(feature(dst))
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of the graph (empty if it has none), found depth first."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return []

    return next((c for node in sorted(graph) if node not in state and (c := visit(node))), [])


def test_no_feature_imports_another_features_store_and_edges_call_services() -> None:
    bad = store_violations()
    assert bad <= STORE_ALLOWED, sorted(bad - STORE_ALLOWED)
    assert bad >= STORE_ALLOWED, f"fixed, drop from STORE_ALLOWED: {sorted(STORE_ALLOWED - bad)}"


def test_no_module_takes_another_features_private_names() -> None:
    """E.g. the desk's `_secret_key`: what a feature (or the desk) keeps private stays so."""
    taken = []
    for name, path in _modules().items():
        for node, _ in _walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("zhiban."):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private and feature(name) != feature(node.module or ""):
                    taken.append((name, node.module, private))
    assert taken == []


def _settings_classes() -> set[str]:
    """Names of the classes that read the environment when built: `Settings` and every `BaseSettings` subclass."""
    names = set(SETTINGS_READERS)
    for path in _modules().values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(getattr(b, "id", "") == "BaseSettings" for b in node.bases):
                names.add(node.name)
    return names


def settings_reads() -> set[tuple[str, str]]:
    """(module, name) for each feature module that reads settings itself, outside its feature's `hooks.py` and
    edges: calls or takes `get_settings`, builds a settings class (a call or a `default_factory`), or reads the
    environment (`os.environ`, `getenv`)."""
    readers = _settings_classes()
    found = set()
    for name, path in _modules().items():
        if feature(name) in INFRA | {"(root)"} or name.rpartition(".")[2] in COMPOSERS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                taken = {"get_settings"} | ({"environ", "getenv"} if node.module == "os" else set())
                found |= {(name, a.name) for a in node.names if a.name in taken}
            elif isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                found.add((name, f"os.{node.attr}"))
            elif isinstance(node, ast.Call):
                func = node.func
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if called in readers:
                    found.add((name, called))
                for keyword in node.keywords:
                    if keyword.arg == "default_factory" and getattr(keyword.value, "id", "") in readers:
                        found.add((name, getattr(keyword.value, "id", "")))
    return found


def test_settings_reach_features_from_their_hooks_or_as_arguments() -> None:
    """Services do not call `get_settings()`: their hooks (or edges) hand settings over, so the desk decides."""
    assert sorted(settings_reads()) == []


def test_models_are_pure() -> None:
    assert model_violations() == set()


def test_no_import_cycles_between_features() -> None:
    graph = feature_graph()
    for a, b in CYCLE_EDGES_ALLOWED:
        graph[a].discard(b)
    assert cycle(graph) == [], " -> ".join(cycle(graph))
    for a, b in CYCLE_EDGES_ALLOWED:  # each allowed edge still closes a loop, or it must go from the list
        assert b in feature_graph().get(a, ()) and cycle({**graph, a: graph[a] | {b}}), f"drop ({a}, {b})"


def knots(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """The groups of features that import each other, directly or around a loop."""
    reached: dict[str, set[str]] = {}
    for start in graph:
        seen, todo = set[str](), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        reached[start] = seen
    return sorted({tuple(sorted(m for m in reached[n] if n in reached.get(m, ()))) for n in graph if n in reached[n]})


if __name__ == "__main__":
    for name, targets in sorted(feature_graph().items()):
        print(f"{name:10} -> {', '.join(sorted(targets))}")
    print("knots:", "; ".join(" <-> ".join(k) for k in knots(feature_graph())))
    print("settings read inside features:", ", ".join(sorted({m for m, _ in settings_reads()})) or "none")
    crossing = sorted(store_violations())
    print(f"store imports outside the rules: {len(crossing)}")
    for src, dst in crossing:
        print(f"  {src} -> {dst}")
