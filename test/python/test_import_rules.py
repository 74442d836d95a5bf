"""The import rules of the source tree, checked on the AST of every module.

* No pass, dialect or folding module imports the numpy reference (``bnnmlir.reference``): the
  oracle of the tests must share no code with the compiler.
* The frontend does not import the pipeline driver or the API (``bnnmlir.compiler``,
  ``bnnmlir.api``, ``bnnmlir.tools``) nor the training layers (``bnnmlir.nn``): it takes its
  errors from ``bnnmlir.errors`` and the custom-op handles from ``bnnmlir.custom_ops``.
* The module-level imports of the package have no cycle.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE_DIRS = {"bnnmlir": ROOT / "bnnmlir", "bnnmlir.dialects": ROOT / "dialects",
                "bnnmlir.passes": ROOT / "passes", "bnnmlir.runtime": ROOT / "runtime"}


def modules() -> dict[str, pathlib.Path]:
    found = {}
    for package, directory in PACKAGE_DIRS.items():
        for path in directory.rglob("*.py"):
            parts = path.relative_to(directory).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def imports(path: pathlib.Path, module_level_only: bool = False) -> list[tuple[int, str]]:
    """``(line, imported module)`` of every import in ``path``; ``from a import b`` imports the
    module ``a.b`` if there is one, else ``a``."""
    known = modules()
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.append((node.lineno, submodule if submodule in known else node.module))
    return found


def violations(sources: str, forbidden: tuple[str, ...]) -> list[str]:
    """``module:line: imports target`` for each import of a ``forbidden`` module (or one of its
    submodules) by ``sources`` (a package or module), at any depth of the code."""
    bad = []
    for name, path in modules().items():
        if name == sources or name.startswith(sources + "."):
            for line, target in imports(path):
                if any(target == f or target.startswith(f + ".") for f in forbidden):
                    bad.append(f"{name}:{line}: imports {target}")
    return bad


@pytest.mark.parametrize("sources", ["bnnmlir.passes", "bnnmlir.dialects", "bnnmlir.folding"])
def test_the_compiler_does_not_import_the_reference(sources):
    assert violations(sources, ("bnnmlir.reference",)) == []


def test_the_frontend_imports_neither_the_driver_nor_the_training_layers():
    forbidden = ("bnnmlir.compiler", "bnnmlir.api", "bnnmlir.tools", "bnnmlir.nn")
    assert violations("bnnmlir.frontend", forbidden) == []


def test_the_rules_see_a_forbidden_import(tmp_path, monkeypatch):
    (tmp_path / "bad_pass.py").write_text("def f():\n    from bnnmlir.reference import support\n")
    monkeypatch.setitem(PACKAGE_DIRS, "bnnmlir.passes", tmp_path)
    assert violations("bnnmlir.passes", ("bnnmlir.reference",)) == [
        "bnnmlir.passes.bad_pass:2: imports bnnmlir.reference.support"
    ]


def import_cycle() -> list[str] | None:
    """A cycle of module-level imports between modules of the package, if there is one."""
    known = modules()
    graph = {
        name: sorted({t for _, t in imports(path, module_level_only=True) if t in known} - {name})
        for name, path in known.items()
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for nxt in graph[name]:
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[name] = 2
        return None

    for name in graph:
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def test_module_level_imports_have_no_cycle():
    assert import_cycle() is None


def test_a_cycle_is_found(tmp_path, monkeypatch):
    (tmp_path / "a.py").write_text("import bnnmlir.extra.b\n")
    (tmp_path / "b.py").write_text("from bnnmlir.extra import a\n")
    monkeypatch.setitem(PACKAGE_DIRS, "bnnmlir.extra", tmp_path)
    assert import_cycle() in (["bnnmlir.extra.a", "bnnmlir.extra.b", "bnnmlir.extra.a"],
                              ["bnnmlir.extra.b", "bnnmlir.extra.a", "bnnmlir.extra.b"])
