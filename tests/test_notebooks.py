"""The notebooks and the book: parameters agree with the declaration, bad ones stop at once,
and the smoke preset goes notebook -> record -> book page."""

import json
import re
import shutil
import warnings
from pathlib import Path

import pytest

from reproduce.report import book_inputs, claims_page, notebook
from reproduce.spec import params

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "experiments").glob("*.ipynb"))


def code_cells(path):
    return [cell for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_agrees_with_the_declaration(path):
    cells = [c for c in code_cells(path) if "parameters" in c["metadata"].get("tags", [])]
    assert len(cells) == 1
    namespace = {}
    exec("".join(cells[0]["source"]), namespace)
    declared = {**params.SWEEP_BY_NAME, **params.NOTEBOOK_BY_NAME, **params.BY_NAME}
    given = notebook.user_parameters(namespace)
    assert given, "an empty parameters cell"
    for name, value in given.items():
        assert name in declared, name
        assert value == declared[name].default, name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_thin(path):
    """A parameters cell and a few calls into reproduce: the logic lives in the package."""
    for cell in code_cells(path):
        lines = [line for line in "".join(cell["source"]).splitlines() if line.strip()]
        if "parameters" in cell["metadata"].get("tags", []):  # declarations only: one `name = value` a line
            assert all(re.fullmatch(r"[a-z_]+ = \S+( +#.*)?", line) for line in lines), lines
            continue
        assert len(lines) <= 5
        assert not any(line.lstrip().startswith(("def ", "class ", "for ", "if ")) for line in lines)


@pytest.mark.parametrize("namespace, message", [
    ({"bogus": 1}, "unknown parameter 'bogus'"),
    ({"preset": "huge"}, "preset: huge is not allowed"),
    ({"seeds": -1}, "seeds: -1 is out of range"),
    ({"epochs": "many"}, "epochs: 'many' is not an int"),
    ({"dropout": True}, "lrn|dropout"),
    ({"activation": "tanh"}, "activation: fixed by claim"),
])
def test_bad_notebook_parameters_stop_with_their_name(namespace, message):
    ablation = "activation" if "activation" in namespace else "dropout" if "dropout" in namespace else "lrn"
    with pytest.raises(params.ParamError, match=message):
        notebook.start(ablation, {"In": [], "get_ipython": None, **namespace}, cuda_available=False)


def test_auto_preset_and_default_seeds():
    study = notebook.start("lrn", {"preset": "auto", "seeds": 0}, cuda_available=False)
    assert (study.preset, study.seeds) == ("cpu", params.PRESETS["cpu"].seeds)
    assert notebook.start("lrn", {"preset": "auto"}, cuda_available=True).preset == "gpu"


def test_with_train_off_a_notebook_reads_and_never_trains(monkeypatch, tmp_path, capsys):
    from reproduce.grids import grid

    monkeypatch.setattr(grid, "run_grid", lambda *args, **kwargs: pytest.fail("trained"))
    study = notebook.start("lrn", {"preset": "smoke", "train": "off", "results_dir": str(tmp_path)})
    study.run()
    assert "train off: nothing is trained here; 4 of the runs are not done" in capsys.readouterr().out


def test_a_bad_notebook_parameter_is_one_line_first_with_the_nearest_name(tmp_path, monkeypatch, capsys):
    """`python -m reproduce notebook` (what `nox -s notebook` runs): the notebook refuses the parameter, and the
    command says so in one line, before anything else, naming the nearest known parameter."""
    from reproduce import cli

    monkeypatch.chdir(tmp_path)
    assert cli.main(["notebook", "lrn", "-p", "presett", "cpu"]) == cli.USER_ERROR
    said = capsys.readouterr().err.splitlines()
    assert said[0].startswith("error: ParamError: unknown parameter 'presett' (did you mean 'preset'?)")
    assert (tmp_path / "results" / "notebooks" / "adhoc" / "lrn.ipynb").exists()


def test_a_notebook_whose_outputs_are_the_same_keeps_its_file_and_paths_are_relative(tmp_path):
    from reproduce.report import pipeline

    def executed(started: str) -> dict:
        return {"metadata": {"papermill": {"start_time": started, "end_time": started, "duration": 1.0,
                                           "input_path": str(pipeline.EXPERIMENTS / "lrn.ipynb"),
                                           "output_path": "anywhere.ipynb"}},
                "cells": [{"cell_type": "code", "id": f"drawn-{started}", "metadata": {"tags": ["injected-parameters"],
                           "execution": {"iopub.status.busy": started}}, "outputs": [], "source": "seeds = 3"}]}

    kept, fresh = tmp_path / "lrn.ipynb", tmp_path / "fresh.ipynb"
    fresh.write_text(json.dumps(executed("2026-12-01T10:00:00")))
    assert pipeline.settle(fresh, kept) and not fresh.exists()
    meta = json.loads(kept.read_text())["metadata"]["papermill"]
    assert meta["input_path"] == "experiments/lrn.ipynb" and meta["output_path"] == str(kept)
    before = kept.read_bytes()
    fresh.write_text(json.dumps(executed("2026-12-02T11:00:00")))  # the same outputs, other times and cell id
    assert not pipeline.settle(fresh, kept) and kept.read_bytes() == before and not fresh.exists()
    changed = executed("2026-12-02T11:00:00")
    changed["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "new"}]
    fresh.write_text(json.dumps(changed))
    assert pipeline.settle(fresh, kept) and kept.read_bytes() != before
    rewritten = json.loads(kept.read_text())["metadata"]["papermill"]  # comparing must not edit what is written
    assert rewritten["input_path"] == "experiments/lrn.ipynb" and rewritten["output_path"] == str(kept)


def test_smoke_notebooks_write_records_and_the_book_shows_their_verdicts(smoke_book):
    work, code = smoke_book
    assert code == 0
    runs = list((work / "results" / "runs").glob("*.json"))
    assert len(runs) == 4  # LRN on/off x 2 seeds; the features notebook measures the LRN arm's runs
    assert all(json.loads(p.read_text())["status"] == "complete" for p in runs)
    assert len(list((work / "results" / "analysis").glob("*.json"))) == 2
    for name in ("lrn", "architecture", "features"):
        executed = book_inputs.read_notebook(work / "results" / "notebooks" / "smoke" / f"{name}.ipynb", "smoke", name)
        assert executed.error is None and executed.parameters["preset"] == "smoke"
    claims_html = (work / "book" / "_build" / "html" / "generated" / "claims.html").read_text()
    assert "C3" in claims_html and "n = 2 seeds" in claims_html
    assert "60,965,224" in claims_html
    assert (work / "book" / "_build" / "html" / "generated" / "smoke" / "lrn.html").exists()
    assert "C17" in claims_html and "C9" in claims_html and "fashion-mnist is greyscale" in claims_html


def test_the_features_page_shows_figures_3_and_4_and_the_pairs(smoke_book):
    work, _ = smoke_book
    page = (work / "book" / "_build" / "html" / "generated" / "smoke" / "features.html").read_text()
    assert page.count("<img") >= 4  # Figure 3, Figure 4, and the pairs of C8 and C17
    assert "C8" in page and "C17" in page

def test_the_built_book_refers_to_nothing_online(smoke_book):
    """No script, style sheet or font from outside: the book reads offline (a plain link a reader
    may click is allowed)."""
    work, _ = smoke_book
    for page in (work / "book" / "_build" / "html").rglob("*.html"):
        html = page.read_text()
        assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', html), page.name
        assert "cdn.jsdelivr" not in html and "unpkg.com" not in html, page.name


def test_a_failed_notebook_shows_its_claims_as_failed(smoke_book, tmp_path):
    work, _ = smoke_book
    results_dir = tmp_path / "results"
    shutil.copytree(work / "results", results_dir)
    failed = results_dir / "notebooks" / "smoke" / "pooling.ipynb"
    failed.write_text(json.dumps({"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "error", "ename": "RuntimeError", "evalue": "1 of 4 runs failed"}]}],
        "metadata": {"papermill": {"exception": True, "parameters": {"preset": "smoke", "seeds": 2}}}}))
    shown = book_inputs.all_outcomes(results_dir, book_inputs.executed_notebooks(results_dir))
    outcomes = shown[0].outcomes
    assert outcomes["C4"].verdict == "failed" and "1 of 4 runs failed" in outcomes["C4"].summary
    assert outcomes["C3"].verdict not in ("failed", "missing")
    assert outcomes["C1"].verdict == "missing"
    assert "v-failed\">failed</span>" in claims_page.claims_page(shown)


def test_a_claim_that_takes_anothers_runs_gets_no_empty_figure_of_its_own():
    """At the cpu preset C15b is C15's computation (one tower, zero biases): the depth notebook draws it once,
    as the forest plot does, and no axes come out empty (an empty one warns 'No artists with labels')."""
    import matplotlib

    matplotlib.use("Agg")
    study = notebook.start("depth", {"preset": "cpu", "seeds": 21, "train": False}, cuda_available=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        drawn = study.figures() + study.per_seed_figures()
    titles = [figure.get_suptitle() for figure in drawn]
    assert sorted(title.split(":")[0] for title in titles) == ["C15", "C15", "C15c", "C15c"], titles
