"""The lent GPU machine's Python, imitated on this one: every package it lacks made unimportable.

scripts/lent-gpu-packages.txt lists what the lent machine has (a copy of ../shared/design's list). A
`sitecustomize.py` in a folder put first on PYTHONPATH refuses, by a meta-path hook, every top-level
module whose distributions are all missing from that list, in the process and in every process it starts."""

from __future__ import annotations

import re
from importlib.metadata import packages_distributions
from pathlib import Path

PACKAGES = Path(__file__).resolve().parents[1] / "scripts" / "lent-gpu-packages.txt"
PROJECT = "reproduce"

HOOK = '''import sys

BLOCKED = {blocked!r}


class NotOnTheLentMachine:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not on the lent GPU machine)", name=name)
        return None


sys.meta_path.insert(0, NotOnTheLentMachine())
'''


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.strip().lower())


def lent_packages() -> set[str]:
    return {_normal(line) for line in PACKAGES.read_text().splitlines() if line.strip() and not line.startswith("#")}


def lacking_modules() -> set[str]:
    """Top-level modules installed here whose every distribution the lent machine lacks (the project aside)."""
    have = lent_packages()
    return {module for module, dists in packages_distributions().items()
            if module != PROJECT and not any(_normal(dist) in have for dist in dists)}


def blocking_site(folder: Path) -> Path:
    """A folder to put first on PYTHONPATH: its sitecustomize makes the lacking modules unimportable."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(HOOK.format(blocked=sorted(lacking_modules())))
    return folder
