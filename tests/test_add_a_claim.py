"""The README's "Add a claim", walked in a copy of the repository with a throwaway claim whose arm needs a new
switch of the network and whose metric is new: the switch declared once and read by the builder, the metric
one entry, the registry entry, its notebook from `new-notebook`, its runs, and its section and notebook page
in the book."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from formats import write_fashion_mnist

from reproduce.report import pipeline

ROOT = Path(__file__).resolve().parents[1]
THROWAWAY = '''
[CX]
title = "The wide fully-connected layers lower the validation error"
quote = "The fully-connected layers have 4096 neurons each"
section = "3.5"
paper_value = "4096 neurons in fc6 and fc7 (no ablation of it)"
kind = "difference"
ablation = "fc_width"
network = "alexnet"
paper_arm = { name = "fc 4096", fc_width = 1.0 }
other_arm = { name = "fc half as wide", fc_width = 0.5 }
metric = "final_val_top1_error"
threshold = 0.01
'''
# Step 2 as a person does it, on the copy: the switch declared once (reaching the builder through builds_model),
# read where it acts, and a metric added. Each anchor is asserted, so that this test fails loudly when they move.
NEW_SWITCH = ('    Param("width", float, 1.0,', '    Param("fc_width", float, 1.0, "multiplier on the width of fc6 and '
              'fc7", minimum=0.01, maximum=4, added_later=True, builds_model=True),\n    Param("width", float, 1.0,')
READ_SWITCH = ('scaled_width(PAPER_FC_WIDTH, config["width"])',
               'scaled_width(round(PAPER_FC_WIDTH * config["fc_width"]), config["width"])')
NEW_METRIC = ('METRICS: dict[str, Metric] = {', 'METRICS: dict[str, Metric] = {\n    "final_val_top1_error": '
              'Metric("top-1 validation error after the last epoch", lambda e: e["val_top1_error"]),')


def edit(path: Path, anchor: str, replacement: str) -> None:
    text = path.read_text()
    assert text.count(anchor) == 1, f"{path.name}: the README's step 2 edits {anchor!r}, which moved"
    path.write_text(text.replace(anchor, replacement))


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
    with open(repo / "reproduce" / "spec" / "claims.toml", "a") as registry:
        registry.write(THROWAWAY)
    # 2. a new switch, declared once and read where it acts; a new metric
    edit(repo / "reproduce" / "spec" / "params.py", *NEW_SWITCH)
    edit(repo / "reproduce" / "nets" / "alexnet.py", *READ_SWITCH)
    edit(repo / "reproduce" / "spec" / "metrics.py", *NEW_METRIC)
    described = reproduce("params")
    assert described.returncode == 0 and "--fc-width" in described.stdout, described.stderr
    # 3. the notebook
    made = reproduce("new-notebook", "fc_width")
    assert made.returncode == 0, made.stderr
    assert (repo / "experiments" / "fc_width.ipynb").exists()
    assert reproduce("new-notebook", "fc_width").returncode == 2  # never overwritten
    # 4. its runs, its notebook executed, the book
    built = reproduce("notebooks", "--preset", "smoke", "--only", "fc_width", "--results-dir", "results")
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    claims_page = (repo / "book" / "_build" / "html" / "generated" / "claims.html").read_text()
    assert "CX" in claims_page and "The wide fully-connected layers" in claims_page and "n = 2 seeds" in claims_page
    assert "top-1 validation error after the last epoch" in claims_page  # the new metric's words
    assert (repo / "book" / "_build" / "html" / "generated" / "smoke" / "fc_width.html").exists()
    index = (repo / "results" / "runs" / "index.csv").read_text()
    assert index.count("CX") == 4 and "fc_width=0.5" in index
    records = [json.loads(p.read_text()) for p in (repo / "results" / "runs").glob("*.json")]
    sizes = {width: {r["model_parameters"] for r in records if r["config"].get("fc_width", 1.0) == width}
             for width in (0.5, 1.0)}
    assert max(sizes[0.5]) < min(sizes[1.0])  # the switch reached the builder: fc6 and fc7 half as wide


@pytest.mark.parametrize("ablation, message", [("nothing", "is in no claim"), ("dropout", "exists already")])
def test_new_notebook_refuses_what_it_cannot_write(ablation, message):
    from reproduce.spec import params

    with pytest.raises(params.ParamError, match=message):
        pipeline.write_notebook(ablation)
