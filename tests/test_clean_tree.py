"""The README's reproduce command on a fresh clone leaves `git status` clean: the committed records are
reused, a notebook whose outputs are the same keeps its file, the book writes only what git ignores, and
the README's figure comes out byte for byte as committed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def committed_seeds(notebook: str) -> int:
    """The seeds the committed notebook of the cpu preset was executed with: all the registered ones once the
    study is whole; while its grid is under way, those whose runs are committed."""
    path = ROOT / "results" / "notebooks" / "cpu" / f"{notebook}.ipynb"
    return int(json.loads(path.read_text())["metadata"]["papermill"]["parameters"]["seeds"])


def test_the_reproduce_command_on_a_fresh_clone_changes_nothing_git_tracks(tmp_path):
    clone = tmp_path / "clone"
    git("clone", "--quiet", str(ROOT), str(clone), cwd=tmp_path)
    # The clone's own package (the current folder comes first on sys.path), as `nox -s reproduce` runs it there.
    seeds = committed_seeds("activation")
    done = subprocess.run([sys.executable, "-m", "reproduce", "all", "--preset", "cpu", "--only", "activation",
                           "--seeds", str(seeds)], cwd=clone,
                          capture_output=True, text=True, timeout=1500, env={**os.environ, "PYTHONPATH": str(clone)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "0 to train" in done.stdout and "the same outputs: the kept notebook stays" in done.stdout
    assert git("status", "--porcelain", cwd=clone) == ""


def test_a_kept_notebook_names_no_path_of_the_machine_that_executed_it():
    for path in sorted((ROOT / "results" / "notebooks").glob("*/*.ipynb")):
        meta = json.loads(path.read_text())["metadata"]["papermill"]
        assert meta["input_path"] == f"experiments/{path.name}", path
        assert meta["output_path"] == str(path.relative_to(ROOT)), path
        assert str(ROOT) not in path.read_text(), path
