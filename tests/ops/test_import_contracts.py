"""The import contracts of ``pyproject.toml`` (``make lint``): the tree keeps them, and a
wrong-way import or an import circle breaks them, naming the contract.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "service" / "recallwatch"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(source_root: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports with the repository's contracts over the package under ``source_root``."""
    env = {**os.environ, "PYTHONPATH": str(source_root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(REPO / "pyproject.toml")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_tree_keeps_its_import_contracts() -> None:
    result = lint_imports(REPO / "service")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # The store persists alerts; it must not know the engine that decides them.
        ("store/db.py", "import recallwatch.alerting", "Layers: top imports bottom, never upward"),
        ("store/db.py", "import recallwatch.config", "The store imports only records and the"),
        # heldout.texts reads through heldout.beir: the reverse import closes a circle.
        ("heldout/beir.py", "import recallwatch.heldout.texts", "No import circle"),
    ],
)
def test_a_wrong_way_import_breaks_a_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    copy = tmp_path / "recallwatch"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{line}  # deliberately the wrong way\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0, result.stdout
    broken = [ln for ln in result.stdout.splitlines() if " BROKEN" in ln]
    assert any(ln.startswith(contract) for ln in broken), result.stdout


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def test_no_private_name_is_imported_from_another_package() -> None:
    """A name with a leading underscore is imported only within its own package."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        importer = ".".join(parts)
        package = _package_of(importer, path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                continue
            if not node.module.startswith("recallwatch"):
                continue
            owner = PACKAGE.parent / Path(*node.module.split("."))
            owner_package = node.module if owner.is_dir() else node.module.rpartition(".")[0]
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and owner_package != package:
                    offenders.append(f"{importer}: from {node.module} import {alias.name}")
    assert not offenders, offenders
