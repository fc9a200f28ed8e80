"""The package's structure: no import cycles, pure stages stay pure, results do not reach into kernel builds."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "harness"


def _module(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """module -> harness modules it imports, at any depth of the file (function-level imports too)."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


GRAPH = _imports()


def _cycle() -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(GRAPH[m]):
            # a package's __init__ re-exporting its own modules is not a cycle through them
            if m.startswith(d + ".") or d.startswith(m + "."):
                continue
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(GRAPH):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_the_import_graph_has_no_cycle():
    assert _cycle() is None, " -> ".join(_cycle() or [])


def _reaches(src: str, prefix: str) -> bool:
    return any(d == prefix or d.startswith(prefix + ".") for d in GRAPH[src])


@pytest.mark.parametrize("pure", ["harness.metrics", "harness.model", "harness.checks", "harness.results.stats",
                                  "harness.jobs", "harness.selftests.tap", "harness.selftests.verdict",
                                  "harness.selftests.suite"])
def test_pure_stages_run_nothing(pure):
    """Parsers, model, checks and statistics: no VM, no ssh, no build, no subprocess."""
    for m in (m for m in GRAPH if m == pure or m.startswith(pure + ".")):
        for impure in ("harness.vm", "harness.kernel", "harness.session", "harness.run", "harness.guest"):
            assert not _reaches(m, impure), f"{m} imports {impure}"
        text = (PACKAGE.parent / (m.replace(".", "/") + ".py")).read_text() if not (
            PACKAGE.parent / m.replace(".", "/")).is_dir() else ""
        for word in ("import subprocess", "import paramiko", "import threading", "import pexpect"):
            assert word not in text, f"{m}: {word}"


def test_results_do_not_import_kernel_builds():
    for m in (m for m in GRAPH if m.startswith("harness.results")):
        assert not _reaches(m, "harness.kernel"), m


def test_vm_does_not_import_the_main_job():
    for m in (m for m in GRAPH if m.startswith("harness.vm")):
        assert not _reaches(m, "harness.run") and not _reaches(m, "harness.cli"), m


def test_test_modules_have_unique_basenames():
    # without __init__.py files pytest imports test modules by basename: a second
    # tests/vm/test_x.py beside tests/unit/test_x.py stops the whole collection
    names = [p.name for p in (PACKAGE.parent / "tests").glob("*/test_*.py")]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
