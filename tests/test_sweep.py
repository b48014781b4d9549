"""An ablation's runs: arms shared between claims train once, reruns reuse, failures are named."""

import pytest

from reproduce import claims, results, sweep, train


def test_runs_shared_by_two_claims_are_planned_once():
    # pooling's C4 and C4b compare the same two arms: 2 arms x 2 seeds, not 8 runs
    configs = sweep.ablation_runs("pooling", "smoke", 2)
    assert len(configs) == 4
    assert {(c["pooling"], c["seed"]) for c in configs} == {
        ("overlapping", 0), ("overlapping", 1), ("non-overlapping", 0), ("non-overlapping", 1)}


def test_the_baseline_arm_is_the_same_run_in_six_ablations():
    def baseline_ids(name):
        return {results.run_id(c) for c in sweep.ablation_runs(name, "smoke", 1)
                if c["lrn"] and c["pooling"] == "overlapping" and c["dropout"] == 0.5 and c["augment"]
                and c["weight_decay"] == 5e-4 and c["bias_init"] == "zero"}

    shared = [baseline_ids(name) for name in ("lrn", "pooling", "dropout", "augmentation", "weight_decay",
                                              "bias_init")]
    assert all(ids == shared[0] for ids in shared) and len(shared[0]) == 1


def test_a_rerun_reuses_finished_runs_and_says_so(tiny_fashion, tmp_path):
    lines = []
    overrides = {"data_dir": str(tiny_fashion), "results_dir": str(tmp_path), "progress": False}
    first = sweep.run_ablation("lrn", "smoke", 1, overrides, log=lines.append)
    assert len(first) == 2 and all(r["status"] == "complete" for r in first)
    assert all("test top-1 error" in line and "reused" not in line for line in lines)
    lines.clear()
    again = sweep.run_ablation("lrn", "smoke", 1, overrides, log=lines.append)
    assert [r["run_id"] for r in again] == [r["run_id"] for r in first]
    assert all(line.endswith("(reused)") for line in lines)


def test_a_failing_run_is_named_and_the_others_still_train(tiny_fashion, tmp_path, monkeypatch):
    real_run = train.run

    def flaky(config):
        if config["lrn"] is False:
            raise RuntimeError("disk full")
        return real_run(config)

    monkeypatch.setattr(train, "run", flaky)
    overrides = {"data_dir": str(tiny_fashion), "results_dir": str(tmp_path), "progress": False}
    with pytest.raises(RuntimeError, match="1 of 2 runs failed:\n.*s0_.*disk full"):
        sweep.run_ablation("lrn", "smoke", 1, overrides, log=lambda line: None)
    assert claims.evaluate(claims.load_registry()["C3"], "smoke", 1, tmp_path).verdict == "incomplete"
