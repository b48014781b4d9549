"""Training-code changes declared numerically equivalent, and the evidence that they are.

A record names the digest of the training modules that made it (provenance.TRAINING_LAYERS), and
a record of any other digest is stale. A refactor that changes no number would then make every
record stale, GPU records included, which cannot be redone without a GPU. Such a change can be
declared instead, in reproduce/records/equivalent_code.toml: a pair (earlier digest, later digest), the
two commits, why, and the evidence - reference runs of every model family trained by both codes
on one machine, one CPU thread, with bit-identical final weights (`python -m reproduce equivalence
EARLIER LATER` writes it to results/equivalence/). Records of the earlier code then stay current;
a chain of declarations is followed back. tests/test_equivalence.py retrains the references of
every declared pair from git, on whatever machine it runs.

What the evidence covers: the CPU's fp32 eager path on Fashion-MNIST. A change to what runs only
on CUDA (autocast, compile) or only on colour data (PCA lighting) is not shown equivalent by it
and must not be declared so without runs that exercise it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from reproduce.base.git import git_bytes, git_text
from reproduce.records.declared import DeclarationError
from reproduce.training.execution import device_kind

EVIDENCE_DIR = "equivalence"  # under the results folder

# Two epochs of 6 steps: enough to cross an epoch boundary (a new data order, the checkpoint) and to
# compound any change in the arithmetic, small enough for a test.
TINY = ["--device", "cpu", "--progress", "off", "--epochs", "2", "--batch-size", "8", "--train-limit", "48",
        "--test-limit", "16", "--log-every", "1", "--seed", "1"]
# One run per model family, and the AlexNet variants the claims switch on. Flags that every
# version of the CLI knows: the earlier code runs them too.
REFERENCE_FAMILIES: dict[str, list[str]] = {
    "alexnet: two towers, LRN, 227 px": ["--model", "alexnet", "--groups", "2", "--bias-init", "zero"],
    "alexnet-small: the cpu preset's": ["--model", "alexnet-small", "--width", "0.125", "--weight-init", "he",
                                        "--input-scale", "unit", "--bias-init", "zero"],
    "alexnet-small: tanh, no LRN, 2/2 pooling, no dropout, no augmentation": [
        "--model", "alexnet-small", "--width", "0.125", "--weight-init", "he", "--input-scale", "unit",
        "--bias-init", "zero", "--activation", "tanh", "--lrn", "off", "--pooling", "non-overlapping",
        "--dropout", "0", "--augment", "off"],
    "alexnet-small: half kernels, without conv4, bias 1": [
        "--model", "alexnet-small", "--width", "0.125", "--weight-init", "he", "--input-scale", "unit",
        "--kernels", "half", "--remove-conv", "conv4"],
    "cifar-18pct": ["--model", "cifar-18pct", "--width", "0.5"],
    "cifar-11pct": ["--model", "cifar-11pct"],
    # Paths the tiny runs above never take: the whole training set (which images it holds, its mean),
    # and the lr schedule acting (patience 0 over 4 epochs).
    "cifar-18pct: the whole training set, one epoch": ["--model", "cifar-18pct", "--width", "0.25",
                                                       "--train-limit", "0", "--batch-size", "128", "--epochs", "1"],
    "alexnet-small: the lr schedule dropping (patience 0, 4 epochs)": [
        "--model", "alexnet-small", "--width", "0.125", "--weight-init", "he", "--input-scale", "unit",
        "--bias-init", "zero", "--lr-patience", "0", "--epochs", "4"],
}
# The family's flags come last and win where they repeat one of TINY's.
REFERENCE_RUNS = {name: [*TINY, *flags] for name, flags in REFERENCE_FAMILIES.items()}
# Runs each tree's own CLI over the reference runs and prints the digests as its last line.
_DRIVER = """
import json, sys
from pathlib import Path
from reproduce import cli
# This tree's own modules, by its own layout: an installed checkout of the project would answer an import of a
# module this tree lacks.
if Path("reproduce/records/provenance.py").exists():
    from reproduce.records import provenance
else:  # a commit from before the layer folders
    from reproduce import results as provenance
runs, scratch, data_dir = json.loads(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
weights = {}
for index, (name, flags) in enumerate(runs.items()):
    folder = scratch / str(index)
    status = cli.main(["run", *flags, "--data-dir", data_dir, "--results-dir", str(folder)])
    found = sorted((folder / "runs").glob("*.json"))
    weights[name] = json.loads(found[0].read_text())["totals"]["weights_sha256"] if status == 0 and found else None
print(json.dumps({"training_sha256": provenance.training_digest(), "weights": weights}))
"""


# ----------------------------------------------------------------------------- the evidence

def extract_tree(commit: str, into: Path, repo: Path) -> Path:
    """The package and pyproject.toml as they were at `commit` (git archive), ready to import."""
    into.mkdir(parents=True, exist_ok=True)
    archive = git_bytes(repo, "archive", commit, "reproduce", "pyproject.toml")
    if archive is None:
        raise DeclarationError(f"git cannot archive commit {commit!r} of {repo}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def reference_digests(tree: Path, data_dir: Path, scratch: Path, runs: dict[str, list[str]]) -> dict[str, Any]:
    """Train the reference runs with the code in `tree` (one CPU thread) and read their weights."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(runs), str(scratch), str(data_dir)],
                          cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the reference runs of {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare_trees(earlier: Path, later: Path, data_dir: Path, runs: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The two trees' codes on the reference runs, side by side, on this machine."""
    import torch


    runs = runs or REFERENCE_RUNS
    with tempfile.TemporaryDirectory() as scratch:
        measured = {role: reference_digests(tree, data_dir.resolve(), Path(scratch) / role, runs)
                    for role, tree in (("earlier", earlier), ("later", later))}
    rows = [{"run": name, "flags": flags, "earlier_weights": measured["earlier"]["weights"].get(name),
             "later_weights": measured["later"]["weights"].get(name)} for name, flags in runs.items()]
    for row in rows:
        row["identical"] = row["earlier_weights"] is not None and row["earlier_weights"] == row["later_weights"]
    return {"earlier": {"training_sha256": measured["earlier"]["training_sha256"]},
            "later": {"training_sha256": measured["later"]["training_sha256"]},
            "machine": f"{device_kind(torch.device('cpu'))}, 1 thread", "torch": torch.__version__,
            "runs": rows, "all_identical": all(row["identical"] for row in rows)}


def check(earlier_commit: str, later_commit: str, data_dir: Path, repo: Path,
          runs: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Both commits' training code on the reference runs: the evidence for a declaration."""
    with tempfile.TemporaryDirectory() as scratch:
        trees = {role: extract_tree(commit, Path(scratch) / role, repo)
                 for role, commit in (("earlier", earlier_commit), ("later", later_commit))}
        evidence = compare_trees(trees["earlier"], trees["later"], data_dir, runs)
    evidence["earlier"]["commit"] = _full_commit(earlier_commit, repo)
    evidence["later"]["commit"] = _full_commit(later_commit, repo)
    return evidence


def _full_commit(commit: str, repo: Path) -> str:
    found = git_text(repo, "rev-parse", commit)
    if not found:
        raise DeclarationError(f"{commit!r} is not a commit of {repo}")
    return found.strip()


def evidence_path(results_dir: str | Path, evidence: dict[str, Any]) -> Path:
    pair = f"{evidence['earlier']['training_sha256'][:12]}-{evidence['later']['training_sha256'][:12]}"
    return Path(results_dir) / EVIDENCE_DIR / f"{pair}.json"


def declaration_text(evidence: dict[str, Any], path: Path, why: str) -> str:
    """The entry to add to equivalent_code.toml, once the evidence says identical."""
    return "\n".join([
        "[[change]]",
        f'earlier = "{evidence["earlier"]["training_sha256"]}"',
        f'later = "{evidence["later"]["training_sha256"]}"',
        f'earlier_commit = "{evidence["earlier"]["commit"]}"',
        f'later_commit = "{evidence["later"]["commit"]}"',
        f"why = {json.dumps(why)}",
        f'evidence = "{path.as_posix()}"', ""])
