"""The README's "Add a claim", walked in a copy of the repository with a throwaway claim: its registry
entry, its notebook from `new-notebook`, its runs, and its section and notebook page in the book."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from formats import write_fashion_mnist
from reproduce import pipeline

ROOT = Path(__file__).resolve().parents[1]
THROWAWAY = '''
[CX]
title = "Momentum speeds up training"
quote = "We trained our models using stochastic gradient descent with a batch size of 128 examples, momentum of 0.9"
section = "5"
paper_value = "momentum 0.9 (no number on what it buys)"
kind = "difference"
ablation = "momentum"
network = "alexnet"
paper_arm = { name = "momentum 0.9", momentum = 0.9 }
other_arm = { name = "no momentum", momentum = 0.0 }
metric = "final_test_top1_error"
threshold = 0.01
'''


def test_the_standard_notebook_is_what_the_ablation_notebooks_run(tmp_path):
    written = json.loads(pipeline.write_notebook("dropout", tmp_path).read_text())
    existing = json.loads((ROOT / "experiments" / "dropout.ipynb").read_text())
    code = [("".join(c["source"]), c["metadata"].get("tags", [])) for c in written["cells"] if c["cell_type"] == "code"]
    assert code == [("".join(c["source"]), c["metadata"].get("tags", [])) for c in existing["cells"]
                    if c["cell_type"] == "code"]


def test_add_a_claim_as_the_readme_says(tmp_path):
    repo = tmp_path / "repo"
    for folder in ("reproduce", "experiments", "book"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("_build", "generated", "__pycache__"))
    write_fashion_mnist(tmp_path / "fashion", train_n=192, test_n=64)
    # PYTHONPATH: the copy's code, for its commands and the notebook's kernel alike, whatever is installed
    env = {**os.environ, "REPRODUCE_FASHION_MNIST_SYSTEM_DIR": str(tmp_path / "fashion"), "PYTHONPATH": str(repo)}

    def reproduce(*args):
        return subprocess.run([sys.executable, "-m", "reproduce", *args], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=600)

    # 1. the registry entry
    with open(repo / "reproduce" / "claims.toml", "a") as registry:
        registry.write(THROWAWAY)
    # 2. no new switch: momentum is a parameter already. 3. the notebook
    made = reproduce("new-notebook", "momentum")
    assert made.returncode == 0, made.stderr
    assert (repo / "experiments" / "momentum.ipynb").exists()
    assert reproduce("new-notebook", "momentum").returncode == 2  # never overwritten
    # 4. its runs, its notebook executed, the book
    built = reproduce("notebooks", "--preset", "smoke", "--only", "momentum", "--results-dir", "results")
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    claims_page = (repo / "book" / "_build" / "html" / "generated" / "claims.html").read_text()
    assert "CX" in claims_page and "Momentum speeds up training" in claims_page and "n = 2 seeds" in claims_page
    assert (repo / "book" / "_build" / "html" / "generated" / "smoke" / "momentum.html").exists()
    index = (repo / "results" / "runs" / "index.csv").read_text()
    assert index.count("CX") == 4 and "momentum=0.0" in index


@pytest.mark.parametrize("ablation, message", [("nothing", "is in no claim"), ("dropout", "exists already")])
def test_new_notebook_refuses_what_it_cannot_write(ablation, message):
    from reproduce import params

    with pytest.raises(params.ParamError, match=message):
        pipeline.write_notebook(ablation)
