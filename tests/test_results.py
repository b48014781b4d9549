"""Run records: hashing, atomic writes, loading into one DataFrame."""

import json
import shutil
from pathlib import Path

import pytest

from reproduce.records import dataframe, provenance, results
from reproduce.records import declared as declared_code
from reproduce.spec import params, run_ids

ROOT = Path(__file__).resolve().parents[1]


def test_hash_ignores_execution_details_but_not_the_experiment(tmp_path):
    base = params.resolve()
    moved = params.resolve({"results_dir": str(tmp_path), "device": "cpu", "progress": "off"})
    assert run_ids.config_hash(base) == run_ids.config_hash(moved)
    assert run_ids.config_hash(base) != run_ids.config_hash(params.resolve({"lrn": "off"}))
    assert run_ids.config_hash(base) != run_ids.config_hash(params.resolve({"seed": 1}))


def test_run_id_is_a_safe_file_name():
    run_id = run_ids.run_id(params.resolve())
    assert "/" not in run_id and run_id.startswith("alexnet_fashion-mnist_s0_")


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "runs" / "x.json"
    results.atomic_write_bytes(path, b"{}")
    assert path.read_bytes() == b"{}"
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_a_record_with_an_unknown_status_is_refused(tmp_path):
    with pytest.raises(ValueError, match="status"):
        results.write_record(tmp_path / "r.json", {"status": "done-ish"})


def _write(tmp_path, config, status, error=0.25):
    record = results.new_record(config, "cpu (test)")
    record["epochs"] = [{"epoch": 1, "test_top1_error": error}]
    results.finish_record(record, status)
    results.write_record(results.record_path(tmp_path, config), record)
    return record


@pytest.mark.parametrize("status, state, done", [
    ("running", "running", False), ("failed", "failed", False), ("diverged", "diverged", True),
    ("complete", "complete", True)])
def test_the_run_state_of_a_record_of_the_current_code(tmp_path, status, state, done):
    config = params.resolve({"results_dir": str(tmp_path)})
    assert results.run_state(tmp_path, config).state == "missing"
    _write(tmp_path, config, status)
    found = results.run_state(tmp_path, config)
    assert (found.state, found.done) == (state, done)


def test_other_training_code_is_stale_unless_declared_equivalent(tmp_path, monkeypatch):

    config = params.resolve({"results_dir": str(tmp_path)})
    record = _write(tmp_path, config, "complete")
    monkeypatch.setattr(provenance, "training_digest", lambda: "b" * 64)  # as after an edit of train.py
    assert results.run_state(tmp_path, config).state == "stale"
    earlier = record["code"]["training_sha256"]
    declared = tmp_path / "equivalent_code.toml"
    declared.write_text(f'[[change]]\nearlier = "{earlier}"\nlater = "{"a" * 64}"\nearlier_commit = "x"\n'
                        f'later_commit = "y"\nwhy = "a refactor"\nevidence = "e.json"\n\n'
                        f'[[change]]\nearlier = "{"a" * 64}"\nlater = "{"b" * 64}"\nearlier_commit = "y"\n'
                        f'later_commit = "z"\nwhy = "another"\nevidence = "f.json"\n')
    monkeypatch.setattr(declared_code, "DECLARATIONS", declared)
    assert results.run_state(tmp_path, config).state == "complete"  # through the chain earlier -> a -> b


def test_an_unreadable_record_is_a_failed_run(tmp_path):
    config = params.resolve({"results_dir": str(tmp_path)})
    path = results.record_path(tmp_path, config)
    path.parent.mkdir(parents=True)
    path.write_text('{"status": "compl')
    found = results.run_state(tmp_path, config)
    assert found.state == "failed" and "unreadable record" in found.reason and not found.done


def test_load_records_gives_a_row_per_run_and_keeps_unreadable_ones(tmp_path):
    _write(tmp_path, params.resolve({"seed": 0}), "complete", 0.2)
    _write(tmp_path, params.resolve({"seed": 1, "lrn": "off"}), "diverged", 0.9)
    (results.runs_dir(tmp_path) / "broken.json").write_text('{"status": "compl')
    frame = dataframe.load_records(tmp_path).set_index("status")
    assert sorted(frame.index) == ["complete", "diverged", "unreadable"]
    assert frame.loc["complete", "final_test_top1_error"] == 0.2
    assert frame.loc["diverged", "lrn"] == False  # noqa: E712 (a numpy bool)
    assert "broken.json" in frame.loc["unreadable", "path"]


def test_record_describes_its_environment(tmp_path):
    record = _write(tmp_path, params.resolve(), "complete")
    saved = json.loads(results.record_path(tmp_path, params.resolve()).read_text())
    assert saved == json.loads(json.dumps(record))
    assert {"torch", "torchvision", "python"} <= set(saved["versions"])
    assert {"commit", "dirty"} <= set(saved["code"])


def test_a_parameter_added_at_its_default_leaves_every_committed_config_hash_unchanged(monkeypatch):
    """A new switch whose default reproduces what the runs before it did keeps their ids: no record is
    orphaned by adding it. At another value it names another run."""
    added = params.Param("new_switch", bool, False, "a switch added after the runs", added_later=True)
    monkeypatch.setattr(params, "PARAMS", (*params.PARAMS, added))
    monkeypatch.setitem(params.BY_NAME, added.name, added)
    # The study's records, and the pilots' and the exploratory studies', each in its own folder.
    committed = [r for folder in ("", "pilot", "v1", "v2") for r in results.readable_records(ROOT / "results" / folder)]
    assert len(committed) >= 100
    for record in committed:
        written_before = dict(record["config"])  # a config without the new parameter
        assert run_ids.config_hash(written_before) == record["config_hash"]
        assert run_ids.config_hash({**written_before, "new_switch": False}) == record["config_hash"]
        assert run_ids.config_hash({**written_before, "new_switch": True}) != record["config_hash"]


def test_editing_prose_in_a_training_module_leaves_the_training_digest_unchanged(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "reproduce", tmp_path / "reproduce")
    monkeypatch.setattr(provenance, "PROJECT_ROOT", tmp_path)
    before = provenance.training_digest()
    module = tmp_path / "reproduce" / "training" / "train.py"
    code = module.read_text()
    reworded = code.replace('"""Training: one readable loop', '"""Training, in other words: one readable loop', 1)
    reworded = reworded.replace("# the loss in fp32 whatever the autocast", "# fp32, whatever autocast does", 1)
    reworded = reworded.replace('    """Train one epoch, evaluate', '    """Train one epoch, then evaluate', 1)
    assert reworded.count("\n") == code.count("\n") and reworded != code
    module.write_text(reworded + "\n\n# a comment at the end\n")
    assert provenance.training_digest() == before
    module.write_text(code.replace("group[\"lr\"] /= 10", "group[\"lr\"] /= 10.0", 1))
    assert provenance.training_digest() != before
