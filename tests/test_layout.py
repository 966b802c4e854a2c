"""The package's layout: one import name, and dependencies that flow one way.

The repository's top-level folders are the subpackages of `gengate` (pyproject.toml maps
`gengate.workers` to `workers/`, ...). Every import names them through `gengate.`, so no module can
load twice under two names; and each layer imports only the layers below it (README.md, "Layout"):

    gengate (cli, procs)   top: the commands, which start everything else
    workers                the Celery app, the sweeper, the worker's metrics endpoint
    api                    the HTTP producer; from tasks/ only what puts a step on a queue
    tasks                  the pipeline steps
    jobs                   the domain: job record, store, cache, accounts, errors
    adapters  storage  media
    config                 settings and the catalog, importing nothing of ours
  and beside them: gengate.client (imports nothing of ours) and sim (the provider simulators,
  which read only config's vendored provider schemas).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("config", "api", "jobs", "tasks", "workers", "adapters", "storage", "media", "sim")

# What each part may import of ours, besides itself.
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "adapters": {"config"},
    "storage": {"config"},
    "media": {"config"},
    "jobs": {"config"},
    "tasks": {"config", "jobs", "adapters", "storage", "media"},
    "api": {"config", "jobs", "storage", "media", "tasks"},
    "workers": {"config", "jobs", "tasks", "adapters", "storage", "media"},
    "sim": {"config"},  # the vendored published schemas it validates against
    "client": set(),
    "gengate": {"config", "jobs", "tasks", "workers", "api", "adapters", "storage", "media", "sim", "client"},
}
# The API puts steps on queues (one LPUSH of a Celery message) and needs no other part of tasks/:
# the pipeline, the adapters and the worker's metrics never load in an API process.
API_MAY_IMPORT_FROM_TASKS = {"gengate.tasks.enqueue", "gengate.tasks.queues", "gengate.tasks.wire"}


def _python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts if parts[0] == "gengate" else ["gengate", *parts])


def _part(module: str) -> str:
    """The layer a `gengate.…` module belongs to."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in SUBPACKAGES:
        return parts[1]
    if len(parts) > 1 and parts[1] == "client":
        return "client"
    return "gengate"


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module an import statement of the file names (at any depth: imports inside functions
    count), except those under `if TYPE_CHECKING:`, which never run."""
    found = []
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", getattr(block.test, "attr", None)) == "TYPE_CHECKING"
                   for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # `from gengate.tasks import pipeline` imports the module gengate.tasks.pipeline
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _our_modules() -> set[str]:
    return {_module_name(p) for folder in ("gengate", *SUBPACKAGES) for p in _python_files(ROOT / folder)}


def _package_graph() -> dict[str, set[tuple[str, str]]]:
    """module -> {(imported module of ours, where)}."""
    ours = _our_modules()
    graph: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for folder in ("gengate", *SUBPACKAGES):
        for path in _python_files(ROOT / folder):
            for line, name in _imports(path):
                if name in ours:
                    graph[_module_name(path)].add((name, f"{path.relative_to(ROOT)}:{line}"))
    return graph


def test_no_import_by_a_bare_top_level_name():
    """`import config` or `from tasks import …` would load a second copy of a module beside
    `gengate.config` (two Celery apps, metrics registered twice), and only from the repository's root."""
    bare = []
    for folder in ("gengate", *SUBPACKAGES, "tests", "bench", "tools"):
        for path in _python_files(ROOT / folder):
            for line, name in _imports(path):
                if name.split(".")[0] in SUBPACKAGES:
                    bare.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert bare == []


def test_each_layer_imports_only_the_layers_below():
    wrong = []
    for module, targets in _package_graph().items():
        src = _part(module)
        for target, where in targets:
            dst = _part(target)
            if dst == src:
                continue
            if dst not in ALLOWED[src]:
                wrong.append(f"{where}: {src} may not import {dst} ({target})")
            elif src == "api" and dst == "tasks" and target not in API_MAY_IMPORT_FROM_TASKS:
                wrong.append(f"{where}: the API may take from tasks/ only {sorted(API_MAY_IMPORT_FROM_TASKS)}, not {target}")
    assert wrong == []


def test_no_import_cycles_between_modules():
    """No two modules import each other, directly or around a loop (imports inside functions count:
    a cycle deferred to call time is still a cycle of responsibilities). Edges between a package and
    its own modules (an __init__ that re-exports them, `from gengate.tasks import ending`) are left out."""
    graph = {m: {t for t, _ in targets if not (_is_parent_package(t, m) or _is_parent_package(m, t))}
             for m, targets in _package_graph().items()}
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    assert cycles == []


def _is_parent_package(parent: str, module: str) -> bool:
    return module.startswith(parent + ".")


def test_the_package_list_names_every_folder():
    """setuptools does not discover remapped folders: pyproject.toml lists the packages and maps each
    subpackage to its folder. A new folder with an __init__.py must be listed, or the wheel lacks it."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = tool["package-dir"]
    listed = set(tool["packages"])
    expected = set()
    for folder in ("gengate", *SUBPACKAGES):
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT).parts
            expected.add(".".join(rel if rel[0] == "gengate" else ("gengate", *rel)))
    assert listed == expected
    assert {name: mapping[f"gengate.{name}"] for name in SUBPACKAGES} == {name: name for name in SUBPACKAGES}


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-P", "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT / "tests")
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_an_api_process_loads_no_worker_code():
    """The API's /metrics shows only its own series, and its memory holds no pipeline or adapters."""
    loaded = _loaded_after("import gengate.api.app")
    worker_side = {m for m in loaded if m.startswith(("gengate.adapters", "gengate.workers", "gengate.sim"))
                   or m in ("gengate.tasks.pipeline", "gengate.tasks.media", "gengate.tasks.metrics",
                            "gengate.tasks.steps", "celery", "fal_client", "replicate", "elevenlabs")}
    assert worker_side == set()


def test_importing_the_tasks_builds_no_app_and_patches_nothing():
    """Importing a task module or the Celery app's module reads no settings and leaves kombu as it
    is; `create_app()`, where a worker starts, does both."""
    code = (
        "import gengate.tasks.steps, gengate.workers.celery_app as c\n"
        "from gengate.config.settings import get_settings\n"
        "from kombu.transport import TRANSPORT_ALIASES\n"
        "assert get_settings.cache_info().currsize == 0, 'settings were built on import'\n"
        "assert 'gengate' not in TRANSPORT_ALIASES['redis'], 'kombu was patched on import'\n"
        "app = c.create_app()\n"
        "assert 'gengate.submit' in app.tasks, sorted(app.tasks)\n"
        "assert 'gengate' in TRANSPORT_ALIASES['redis']\n"
    )
    _loaded_after(code)


def test_nothing_in_the_code_points_outside_the_repository():
    """What the code relies on is in the repository's own docs; no comment sends a reader elsewhere."""
    outside = []
    for folder in ("gengate", *SUBPACKAGES, "bench"):
        for path in _python_files(ROOT / folder):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if any(ref in line for ref in ("../shared", "CELERY.md", "PROVIDERS.md", "DESIGN.md", "STYLE.md")):
                    outside.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    for name in ("pyproject.toml", "docker-compose.yml", "Dockerfile"):
        for n, line in enumerate((ROOT / name).read_text().splitlines(), 1):
            if any(ref in line for ref in ("../shared", "CELERY.md", "PROVIDERS.md", "DESIGN.md")):
                outside.append(f"{name}:{n}: {line.strip()}")
    assert outside == []


@pytest.mark.parametrize("doc", ["README.md"])
def test_readme_has_a_layout_line_for_every_folder(doc: str):
    text = (ROOT / doc).read_text()
    section = text[text.index("## Layout"):]
    section = section[:section.index("\n## ", 4)]
    for folder in ("gengate", *SUBPACKAGES, "tests", "bench", "tools", "docs"):
        assert f"`{folder}/`" in section, folder
