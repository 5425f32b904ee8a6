"""Print the requirements of pyproject.toml (and of the extras named), one per line.

The Dockerfile installs these in a layer of their own before it copies the code, so a code change
does not reinstall numpy, faiss or torch: ``python requirements.py [EXTRA,...] > requirements.txt``.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """The project's dependencies, then those of each extra, without duplicates."""
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        raise SystemExit(f"unknown extra(s) {unknown}: pyproject.toml has {sorted(optional)}")
    out: list[str] = []
    for dep in [*project["dependencies"], *(d for e in extras for d in optional[e])]:
        if dep not in out:
            out.append(dep)
    return out


def main(argv: list[str]) -> int:
    """``requirements.py [EXTRA[,EXTRA...]] [--pyproject PATH]``."""
    pyproject = Path("pyproject.toml")
    if "--pyproject" in argv:
        i = argv.index("--pyproject")
        pyproject = Path(argv[i + 1])
        argv = argv[:i] + argv[i + 2 :]
    extras = [e for arg in argv for e in arg.split(",") if e.strip()]
    print("\n".join(requirements(pyproject, extras)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
