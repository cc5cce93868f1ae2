"""Imports only go downward: ``retrieval`` <- ``reward`` <- ``grpo`` -> ``policy``, with ``leser`` on top.

Every module under ``src/`` is parsed with ``ast`` (nothing is imported, so this runs without torch), and every
import in it counts: top level, inside functions and under ``TYPE_CHECKING``. A lazy import is still a
dependency, and an upward one is how a library layer starts to need the app.
"""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGES = {"retrieval", "reward", "policy", "grpo", "leser"}

# What each package may import among the project's own packages (besides itself).
ALLOWED = {
    "retrieval": set(),
    "reward": {"retrieval"},
    "policy": set(),
    "grpo": {"policy", "reward", "retrieval"},
    "leser": {"retrieval", "reward", "policy", "grpo"},
}


def imported_packages(path: Path, package_parts: tuple[str, ...]) -> list[tuple[int, str]]:
    """(line, top-level package) for each import in the file; relative imports resolved from ``package_parts``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((node.lineno, (node.module or "").split(".")[0]))
            else:
                base = package_parts[: len(package_parts) - (node.level - 1)]
                found.append((node.lineno, base[0] if base else (node.module or "").split(".")[0]))
    return found


def modules():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        package_parts = rel.parts[:-1]
        if package_parts and package_parts[0] in PACKAGES:
            yield path, rel, package_parts


def upward_imports() -> list[str]:
    bad = []
    for path, rel, package_parts in modules():
        own = package_parts[0]
        for line, target in imported_packages(path, package_parts):
            if target in PACKAGES and target != own and target not in ALLOWED[own]:
                bad.append(f"src/{rel}:{line}: {own} imports {target}")
    return bad


def test_every_package_is_scanned():
    seen = {package_parts[0] for _, _, package_parts in modules()}
    assert seen == PACKAGES


def test_imports_only_go_downward():
    assert upward_imports() == []


def test_an_upward_import_is_caught(tmp_path):
    module = tmp_path / "retrieval" / "bad.py"
    module.parent.mkdir()
    module.write_text("def f():\n    from reward import usable\n    from ..leser import cli\n")
    targets = [t for _, t in imported_packages(module, ("retrieval",))]
    assert sorted(targets) == ["leser", "reward"]
