"""The claims registry and its verdicts, on records written with known numbers."""

import math
import re
import statistics
from dataclasses import replace
from pathlib import Path

import pytest

from reproduce.records import results
from reproduce.report import book_inputs
from reproduce.runs import architecture
from reproduce.spec import metrics, params, plan
from reproduce.verdicts import claims, decisions, stats, wording

CLAIMS_MD = Path(__file__).resolve().parents[2] / "shared" / "paper" / "claims.md"
REGISTRY = plan.load_registry()


def fake_run(results_dir, config, test_error, fit_error=0.0, iterations=None, status="complete"):
    """A record as train.run writes it, with the numbers a test needs."""
    record = results.new_record(config, "test device")
    record["epochs"] = [{"epoch": 1, "train_error": 0.5, "test_top1_error": test_error,
                         "fit_top1_error": fit_error, "train_time_s": 1.0, "eval_time_s": 0.5}]
    record["iterations"] = iterations or []
    results.finish_record(record, status, None if status == "complete" else "boom")
    results.write_record(results.record_path(results_dir, config), record)
    return record


def write_arms(results_dir, claim, values, seeds=3, preset="smoke", **kwargs):
    """values: arm name -> function of seed -> test error."""
    for arm, by_seed in plan.planned_runs(claim, preset, seeds, {"results_dir": str(results_dir)}).items():
        for seed, config in by_seed.items():
            fake_run(results_dir, config, values[arm](seed), **kwargs)


def test_every_claim_of_the_paper_is_in_the_registry():
    listed = set(re.findall(r"^\| (C\d+) \|", CLAIMS_MD.read_text(), flags=re.M)) if CLAIMS_MD.exists() \
        else {f"C{i}" for i in range(1, 18)}
    assert listed <= set(REGISTRY)


def test_every_ablation_of_the_registry_has_a_notebook_and_every_notebook_an_ablation():
    """The book shows the notebooks in the registry's order (plan.ablations): none can be left out."""
    found = {path.stem for path in (Path(__file__).resolve().parents[1] / "experiments").glob("*.ipynb")}
    assert found == set(plan.ablations())
    assert book_inputs.executed_notebooks.__doc__ and "registry" in book_inputs.executed_notebooks.__doc__


def test_untested_claims_give_a_reason():
    for claim in REGISTRY.values():
        if claim.kind == "untested":
            assert claims.evaluate(claim, "smoke", 3).verdict == "not tested here"
            assert claim.reason


@pytest.mark.parametrize("estimate, low, high, verdict", [
    (0.020, 0.010, 0.030, "reproduced"),
    (0.003, 0.001, 0.005, "consistent with the paper"),
    (0.000, -0.002, 0.002, "not reproduced"),
    (-0.020, -0.030, -0.010, "not reproduced"),
    (0.004, -0.010, 0.018, "inconclusive"),
])
def test_decide_follows_the_registry_rule(estimate, low, high, verdict):
    assert claims.decide(stats.Interval(estimate, low, high, 3, 0.01), 0.0, 0.005) == verdict


def test_a_lower_bound_can_reproduce_but_never_rule_out_or_shrink():
    small = stats.Interval(1.2, 0.9, 1.5, 3, 0.2)
    assert claims.decide(small, 1.0, 2.0) == "not reproduced"
    assert claims.decide(small, 1.0, 2.0, lower_bound=True) == "inconclusive"
    above_one = stats.Interval(1.5, 1.2, 1.8, 3, 0.2)
    assert claims.decide(above_one, 1.0, 2.0) == "consistent with the paper"
    assert claims.decide(above_one, 1.0, 2.0, lower_bound=True) == "inconclusive"
    large = stats.Interval(3.0, 2.5, 3.5, 3, 0.2)
    assert claims.decide(large, 1.0, 2.0, lower_bound=True) == "reproduced"


def test_rule_text_states_the_numbers_decide_uses():
    assert "0.5 points" in wording.rule_text(REGISTRY["C3"])
    assert "2x" in wording.rule_text(REGISTRY["C1"]) and "25.76%" in wording.rule_text(REGISTRY["C1"])


def test_arms_and_seeds_cannot_be_overridden():
    with pytest.raises(params.ParamError, match="lrn: fixed by claim C3"):
        plan.arm_config(REGISTRY["C3"], REGISTRY["C3"].paper_arm, "smoke", 0, {"lrn": False})
    with pytest.raises(params.ParamError, match="seed"):
        plan.arm_config(REGISTRY["C3"], REGISTRY["C3"].paper_arm, "smoke", 0, {"seed": 4})


def test_conditions_apply_to_both_arms():
    runs = plan.planned_runs(REGISTRY["C1"], "smoke", 2)
    for by_seed in runs.values():
        for config in by_seed.values():
            assert config["weight_decay"] == 0.0 and config["augment"] is False
    assert {c["activation"] for by_seed in runs.values() for c in by_seed.values()} == {"relu", "tanh"}


def test_a_clear_effect_is_reproduced(tmp_path):
    claim = REGISTRY["C3"]
    write_arms(tmp_path, claim, {"LRN": lambda s: 0.20 + 0.01 * s, "no LRN": lambda s: 0.23 + 0.01 * s + 0.001 * s})
    outcome = claims.evaluate(claim, "smoke", 3, tmp_path)
    assert outcome.verdict == "reproduced"
    assert outcome.interval.estimate == pytest.approx(0.031)
    assert outcome.interval.n == 3 and len(outcome.run_ids) == 6


def test_no_effect_with_a_tight_spread_is_not_reproduced(tmp_path):
    claim = REGISTRY["C3"]
    write_arms(tmp_path, claim, {"LRN": lambda s: 0.20 + 0.01 * s, "no LRN": lambda s: 0.20 + 0.01 * s + 0.0005 * (s - 1)})
    assert claims.evaluate(claim, "smoke", 3, tmp_path).verdict == "not reproduced"


def test_a_noisy_effect_is_inconclusive_and_neither_one_sided_test_rejects(tmp_path):
    claim = REGISTRY["C3"]
    write_arms(tmp_path, claim, {"LRN": lambda s: 0.20, "no LRN": lambda s: 0.20 + (0.03, -0.01, 0.0)[s]})
    outcome = claims.evaluate(claim, "smoke", 3, tmp_path)
    assert outcome.verdict == "inconclusive"
    assert outcome.p_direction > 0.05 and outcome.p_size > 0.05


def test_overfitting_is_test_minus_fit_error(tmp_path):
    claim = REGISTRY["C10"]
    for arm, by_seed in plan.planned_runs(claim, "smoke", 3).items():
        for seed, config in by_seed.items():
            fit = 0.05 if arm == "no dropout" else 0.15
            fake_run(tmp_path, config, test_error=0.20 + 0.001 * seed * (arm == "no dropout"), fit_error=fit)
    outcome = claims.evaluate(claim, "smoke", 3, tmp_path)
    assert outcome.interval.estimate == pytest.approx(0.101)
    assert outcome.verdict == "reproduced"


def test_missing_failed_and_stale_runs_give_no_verdict(tmp_path):
    claim = REGISTRY["C4"]
    assert claims.evaluate(claim, "smoke", 2, tmp_path).verdict == "missing"
    runs = plan.planned_runs(claim, "smoke", 2)
    first = runs[claim.paper_arm.name][0]
    fake_run(tmp_path, first, 0.2)
    assert claims.evaluate(claim, "smoke", 2, tmp_path).verdict == "missing"
    fake_run(tmp_path, runs[claim.other_arm.name][1], 0.2, status="failed")
    assert claims.evaluate(claim, "smoke", 2, tmp_path).verdict == "failed"

    stale_dir = tmp_path / "stale"
    for by_seed in runs.values():
        for config in by_seed.values():
            record = fake_run(stale_dir, config, 0.2)
            record["code"]["training_sha256"] = "0" * 64
            results.write_record(results.record_path(stale_dir, config), record)
    outcome = claims.evaluate(claim, "smoke", 2, stale_dir)
    assert outcome.verdict == "stale"


def test_the_speed_ratio_counts_iterations_to_the_target(tmp_path):
    claim = REGISTRY["C1"]

    def curve(crossing):
        return [{"iteration": i, "train_error": 0.9 if i < crossing else 0.2} for i in range(10, 1001, 10)]

    ratios = []
    for seed in plan.claim_seeds(claim, "smoke", 3):
        crossings = {"ReLU": 100 + 10 * seed, "tanh": 600 + 60 * seed}
        for label, by_seed in plan.planned_runs(claim, "smoke", 3).items():
            fake_run(tmp_path, by_seed[seed], 0.2, iterations=curve(crossings[label.split(",")[0]]))
        # The registered crossing rule reads each step 3 log points late, interpolated: not exactly 6.
        smoothed = {arm: stats.smoothed_crossing(curve(at), claim.target_train_error).iteration
                    for arm, at in crossings.items()}
        ratios.append(smoothed["tanh"] / smoothed["ReLU"])
    outcome = claims.evaluate(claim, "smoke", 3, tmp_path)
    assert claim.crossing == "smoothed-3/1"
    assert outcome.interval.estimate == pytest.approx(statistics.geometric_mean(ratios))
    assert outcome.verdict == "reproduced" and not outcome.censored


def test_each_arm_of_an_lr_sweep_is_judged_at_its_own_best_lr(tmp_path):
    """The exploratory v1 study's C1: each arm at every lr of a sweep, judged at its best, first log point."""
    registered = REGISTRY["C1"]
    claim = replace(registered, lr_sweep=(0.0025, 0.005, 0.01, 0.02, 0.04, 0.08), crossing="first-log-point/1",
                    paper_arm=plan.Arm("ReLU", {"activation": "relu"}), other_arm=plan.Arm("tanh", {"activation": "tanh"}))

    def curve(crossing):
        return [{"iteration": i, "train_error": 0.9 if i < crossing else 0.2} for i in range(10, 2001, 10)]

    # ReLU is fastest at 0.01, tanh at 0.08 (the grid's edge) and ReLU never gets there at 0.08:
    # tanh / ReLU = 400 / 100 at the best lrs.
    fastest = {"ReLU": {0.0025: 500, 0.005: 300, 0.01: 100, 0.02: 200, 0.04: 400, 0.08: 5000},
               "tanh": {0.0025: 1900, 0.005: 1600, 0.01: 800, 0.02: 700, 0.04: 600, 0.08: 400}}
    for label, by_seed in plan.planned_runs(claim, "smoke", 3).items():
        for seed, config in by_seed.items():
            arm = label.split(",")[0]
            fake_run(tmp_path, config, 0.2, iterations=curve(fastest[arm][config["lr"]]))
    outcome = claims.evaluate(claim, "smoke", 3, tmp_path)
    assert outcome.chosen == {"ReLU": "ReLU, lr 0.01", "tanh": "tanh, lr 0.08"}
    assert outcome.interval.estimate == pytest.approx(4.0) and not outcome.censored
    assert "tanh, lr 0.08: at the grid's edge" in outcome.summary
    assert "never reached the target (counted at their last iteration): ReLU, lr 0.08 in 3 of 3 seeds" in outcome.summary
    assert len(outcome.run_ids) == 36 and "best lr of the sweep" in wording.rule_text(claim)


def test_every_trained_claim_says_whether_its_lrs_were_tuned():
    assert wording.lr_fairness(REGISTRY["C1"], "cpu").tuned is True
    assert wording.lr_fairness(REGISTRY["C3"], "cpu").text == (
        "not tuned: both arms at lr 0.01 (the paper tuned lr per net only for Figure 1)")
    assert wording.lr_fairness(REGISTRY["C5"], "cpu") == wording.LrFairness(None, "")


def test_a_colour_claim_is_not_tested_on_greyscale_data_and_runs_on_colour():
    claim = REGISTRY["C9"]
    outcome = claims.evaluate(claim, "cpu", 3)
    assert outcome.verdict == "not tested here" and "fashion-mnist is greyscale" in outcome.summary
    assert plan.planned_runs(claim, "cpu", 3) == {}
    on_cifar = plan.planned_runs(claim, "cpu", 2, {"dataset": "cifar10"})
    assert {c["lighting"] for by_seed in on_cifar.values() for c in by_seed.values()} == {"on", "off"}
    assert claims.evaluate(claim, "paper", 1).verdict == "missing"  # the ImageNet folder has colour


def test_another_claims_arm_is_not_taken_for_a_changed_default(tmp_path):
    towers = REGISTRY["C2"]
    half = plan.planned_runs(towers, "smoke", 1)[towers.other_arm.name][0]
    fake_run(tmp_path, half, 0.2)
    assert claims.evaluate(REGISTRY["C3"], "smoke", 1, tmp_path).verdict == "missing"


def write_analysed_runs(results_dir, claim, measures_by_seed, seeds=3):
    """Records and their analysis files for a within claim: measures_by_seed(seed) -> measures."""
    from reproduce.runs import analysis

    for config in next(iter(plan.planned_runs(claim, "smoke", seeds).values())).values():
        record = fake_run(results_dir, config, 0.2)
        record["totals"] = {"weights_sha256": f"weights-{config['seed']}"}
        results.write_record(results.record_path(results_dir, config), record)
        found = {"weights_sha256": f"weights-{config['seed']}", "analysis_sha256": analysis.code_digest(),
                 "measures": measures_by_seed(config["seed"])}
        path = analysis.analysis_path(results_dir, record["run_id"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(__import__("json").dumps(found))


def test_a_within_claim_compares_two_measures_of_the_same_runs(tmp_path):
    claim = REGISTRY["C8"]
    assert claims.evaluate(claim, "smoke", 3, tmp_path).verdict == "missing"
    write_analysed_runs(tmp_path, claim, lambda s: {"centre_test_top1_error": 0.30 + 0.01 * s,
                                                    "ten_crop_test_top1_error": 0.28 + 0.01 * s - 0.001 * s})
    outcome = claims.evaluate(claim, "smoke", 3, tmp_path)
    assert outcome.verdict == "reproduced" and outcome.interval.estimate == pytest.approx(0.021)
    assert len(outcome.run_ids) == 3 and outcome.p_direction < 0.05


def test_a_within_claim_without_a_current_analysis_is_unmeasured(tmp_path):
    claim = REGISTRY["C17"]
    write_analysed_runs(tmp_path, claim, lambda s: {"feature_neighbour_disagreement": 0.1,
                                                    "pixel_neighbour_disagreement": 0.2})
    for path in (tmp_path / "analysis").glob("*.json"):
        path.write_text(path.read_text().replace('"weights-0"', '"other-weights"'))
    outcome = claims.evaluate(claim, "smoke", 3, tmp_path)
    assert outcome.verdict == "unmeasured" and "no current analysis" in outcome.summary


@pytest.mark.parametrize("stalled, bound", [("tanh", "lower"), ("ReLU", "upper")])
def test_a_ratio_bound_follows_the_arm_whose_runs_never_reached_the_target(tmp_path, stalled, bound):
    """The slow arm stalled: the measured ratio is at most the true one (a lower bound). The fast arm stalled:
    at least the true one (an upper bound); the first seed's stalled run ended at chance and is named. (Without
    the registered chance rule, which would leave such a seed out.)"""
    claim = replace(REGISTRY["C1"], chance=None)

    def curve(reaches, seed):
        if not reaches:  # stays at chance (0.9)
            return [{"iteration": i, "train_error": 0.9} for i in range(10, 201, 10)]
        return [{"iteration": i, "train_error": 0.9 if i < 40 + 10 * seed else 0.2} for i in range(10, 201, 10)]

    first = plan.claim_seeds(claim, "smoke", 3)[0]
    for arm, by_seed in plan.planned_runs(claim, "smoke", 3).items():
        for seed, config in by_seed.items():
            reaches = not (arm.startswith(stalled) and seed == first)
            fake_run(tmp_path, config, 0.2, iterations=curve(reaches, seed))
    outcome = claims.evaluate(claim, "smoke", 3, tmp_path)
    assert outcome.censored and outcome.bound == bound
    assert outcome.short.startswith({"lower": ">= ", "upper": "<= "}[bound])
    assert ("at least " if bound == "lower" else "at most ") in outcome.summary
    assert outcome.dead == [f"{stalled} seed {first}"] and outcome.without_dead.n == 2
    assert decisions.as_json(outcome, "smoke", [])["bound"] == bound
    # A slow arm's bound cannot rule the size out; a fast arm's cannot show the direction.
    assert math.isnan(outcome.p_size) if bound == "lower" else math.isnan(outcome.p_direction)


def test_the_interval_a_verdict_was_decided_at_agrees_with_it(tmp_path):
    """Above no effect exactly when the direction is shown; below the threshold exactly when the size is ruled
    out: whatever the plain 95% interval says (C15's clears 0 and its verdict is inconclusive)."""
    c3, c4, c15 = (replace(REGISTRY[i], estimator="paired-mean-t/1", seeds=4) for i in ("C3", "C4", "C15"))
    registry = {c.id: c for c in (c3, c4, c15)}
    write_arms(tmp_path, c3, {"LRN": lambda s: 0.20, "no LRN": lambda s: 0.23 + 0.001 * s}, seeds=4)
    write_arms(tmp_path, c4, {"overlapping 3/2": lambda s: 0.20, "non-overlapping 2/2": lambda s: 0.20 + 0.0002 * s},
               seeds=4)
    write_arms(tmp_path, c15, {"five conv layers": lambda s: 0.20,
                               "without conv3": lambda s: 0.20 + (0.004, 0.012, 0.004, 0.012)[s]}, seeds=4)
    for outcome in decisions.evaluate_family("smoke", 4, tmp_path, registry=registry):
        low, high = outcome.deciding
        shown = outcome.verdict in ("reproduced", "consistent with the paper")
        assert (low > 0) == shown, outcome.claim.id
        assert (high < outcome.claim.threshold and not shown) == (outcome.verdict == "not reproduced")
        assert outcome.family == 6 and outcome.levels[0] <= 0.05
    c15_outcome = next(o for o in decisions.evaluate_family("smoke", 4, tmp_path, registry=registry) if o.claim.id == "C15")
    assert c15_outcome.interval.low > 0 and c15_outcome.verdict == "inconclusive"
    assert "Holm needs <=" in wording.undecided_text(c15_outcome)


def test_architecture_claims_come_from_the_saved_table(tmp_path):
    assert claims.evaluate(REGISTRY["C5"], "smoke", 1, tmp_path).verdict == "missing"
    summary = architecture.save(tmp_path)
    assert summary["parameters"] == 60_965_224 and summary["neurons"] == 659_272
    assert claims.evaluate(REGISTRY["C5"], "smoke", 1, tmp_path).verdict == "reproduced"
    c6 = claims.evaluate(REGISTRY["C6"], "smoke", 1, tmp_path)
    assert c6.verdict == "consistent with the paper" and "60,965,224" in c6.summary


def test_a_broken_registry_entry_is_refused(tmp_path):
    path = tmp_path / "claims.toml"
    path.write_text('[X1]\ntitle="t"\nquote="q"\nsection="1"\npaper_value="v"\nkind="difference"\n'
                    'ablation="lrn"\nnetwork="alexnet"\nmetric="final_test_top1_error"\nthreshold=0.1\n'
                    'paper_arm={name="a", lrn=true}\nother_arm={name="b", lrn="sideways"}\n')
    with pytest.raises(plan.RegistryError, match="X1: arm 'b': lrn"):
        plan.load_registry(path)


def test_nan_is_never_a_verdict():
    assert claims.decide(stats.Interval(0.1, math.nan, math.nan, 1), 0.0, 0.005) == "inconclusive"


def test_a_diverged_run_makes_the_claim_inconclusive_and_is_named(tmp_path):
    claim = REGISTRY["C3"]
    runs = plan.planned_runs(claim, "smoke", 2)
    for arm, by_seed in runs.items():
        for seed, config in by_seed.items():
            diverged = arm == "no LRN" and seed == 1
            record = fake_run(tmp_path, config, 0.2)
            if diverged:
                results.finish_record(record, "diverged", "training loss became nan in epoch 1 by iteration 20")
                results.write_record(results.record_path(tmp_path, config), record)
    outcome = claims.evaluate(claim, "smoke", 2, tmp_path)
    assert outcome.verdict == "inconclusive"
    assert "no LRN, seed 1: diverged (training loss became nan" in outcome.summary


def test_every_metric_and_measure_the_schema_allows_is_computed_and_worded():
    assert set(plan.METRICS) == set(metrics.METRICS) and all(m.words for m in metrics.METRICS.values())
    assert set(plan.MEASURES) == set(wording.MEASURE_WORDS)
    assert set(params.MODELS) == set(wording.MODEL_WORDS) | {"cifar-11pct"}  # no preset trains cifar-11pct


def test_the_settings_that_name_a_run_come_from_what_the_registry_compares(tmp_path):
    """Every claim's arms get different names (C12's two arms differ only in bias_init, which a hand-made
    list once left out), and a switch a new claim compares is named without a list to update."""
    for claim in REGISTRY.values():
        planned = plan.planned_runs(claim, "cpu", 1) if claim.kind in ("difference", "ratio") else {}
        baseline = params.resolve({}, preset="cpu", network=claim.network) if planned else None
        names = {plan.describe_run(next(iter(by_seed.values())), baseline, seed=False) for by_seed in planned.values()}
        assert len(names) == len(planned), claim.id
    c12 = {plan.describe_run(next(iter(by_seed.values())), params.resolve({}, preset="cpu"), seed=False)
           for by_seed in plan.planned_runs(REGISTRY["C12"], "cpu", 1).values()}
    assert c12 == {"model=alexnet-small epochs=8", "model=alexnet-small epochs=8 bias_init=paper"}
    compared = plan.compared_anywhere()
    assert {"bias_init", "lrn", "remove_conv", "lr", "epochs"} <= compared and "width" not in compared  # C12: 8 epochs


def test_registered_claims_are_decided_together_by_holm_whatever_they_assert(tmp_path):
    """Two registered claims: one clearly in the paper's direction, one whose size is ruled out; a third whose
    evidence would pass alone at 5% but not once the family of six hypotheses is corrected."""
    c3, c4, c15 = (replace(REGISTRY[i], estimator="paired-mean-t/1", seeds=4) for i in ("C3", "C4", "C15"))
    registry = {c.id: c for c in (c3, c4, c15)}
    write_arms(tmp_path, c3, {"LRN": lambda s: 0.20, "no LRN": lambda s: 0.23 + 0.001 * s}, seeds=4)
    write_arms(tmp_path, c4, {"overlapping 3/2": lambda s: 0.20, "non-overlapping 2/2": lambda s: 0.20 + 0.0002 * s},
               seeds=4)
    write_arms(tmp_path, c15, {"five conv layers": lambda s: 0.20,
                               "without conv3": lambda s: 0.20 + (0.004, 0.012, 0.002, 0.010)[s]}, seeds=4)
    alone = claims.evaluate(c15, "smoke", 4, tmp_path)
    assert alone.p_direction < 0.05  # alone it would show the direction
    outcomes = {o.claim.id: o for o in decisions.evaluate_family("smoke", 4, tmp_path, registry=registry)}
    assert outcomes["C3"].verdict == "reproduced" and outcomes["C4"].verdict == "not reproduced"
    assert outcomes["C15"].verdict == "inconclusive" and outcomes["C15"].family == 6
    assert outcomes["C15"].adjusted[0] > 0.05 and not outcomes["C15"].preliminary
    # A fourth registered claim whose runs are not there yet still counts in the family (at p = 1).
    c10 = replace(REGISTRY["C10"], estimator="paired-mean-t/1", seeds=4)
    pending = {o.claim.id: o for o in decisions.evaluate_family("smoke", 4, tmp_path, registry={**registry, "C10": c10})}
    assert pending["C10"].verdict == "missing" and pending["C3"].family == 8
    assert pending["C3"].adjusted[0] >= outcomes["C3"].adjusted[0] and pending["C3"].verdict == "reproduced"


def test_the_forest_plot_writes_each_claims_whole_title_wrapped_and_a_legend_of_what_it_draws():
    """No title cut ("[...]"), legible ratio ticks, and no colour in the legend that no point uses."""
    import matplotlib

    matplotlib.use("Agg")
    from reproduce.report import forest

    registry = plan.load_registry()
    c3, c1 = registry["C3"], registry["C1"]
    difference = claims.Outcome(c3, "inconclusive", interval=stats.Interval(0.002, -0.004, 0.007, 8, 0.006),
                                deciding=(-0.008, 0.011), levels=(0.002, 0.002))
    ratio = claims.Outcome(c1, "not reproduced", interval=stats.Interval(1.0, 0.78, 1.27, 14, 0.4, True),
                           bound="upper")
    figure = forest.forest_plot([difference, ratio], "cpu")
    labels = [t.get_text() for ax in figure.axes for t in ax.get_yticklabels()]
    assert any(label.replace("\n", " ") == f"C3: {c3.title}" for label in labels)
    assert not any("[...]" in label for label in labels)
    drawn = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert {"inconclusive", "not reproduced", "95% interval\n(in the verdict's colour)", "an upper bound"} <= set(drawn)
    assert "reproduced" not in drawn and "a lower bound" not in drawn
    handles = dict(zip(drawn, figure.axes[0].get_legend().legend_handles))
    assert all(handles[v].get_marker() == "o" and handles[v].get_linestyle() == "None"
               for v in ("inconclusive", "not reproduced"))  # a verdict is a dot, never a bar like the interval
    ticks = [t.get_text() for t in figure.axes[1].get_xticklabels()]
    assert ticks and all(t.endswith("x") for t in ticks)


def test_a_registered_chance_rule_leaves_out_the_seeds_where_a_run_never_learned(tmp_path):
    """C1's `chance` rule: a run whose smoothed training error never falls below 80% is no evidence of its arm's
    speed; its seed (both arms) leaves the estimate, and the summary names it. Without the rule it counts as slow."""
    claim = replace(REGISTRY["C1"], chance="never-below-80/1")

    def curve(crossing):
        return [{"iteration": i, "train_error": 0.9 if i < crossing else 0.2} for i in range(10, 1001, 10)]

    for seed in plan.claim_seeds(claim, "smoke", 4):
        stuck = seed == plan.claim_seeds(claim, "smoke", 4)[1]
        for label, by_seed in plan.planned_runs(claim, "smoke", 4).items():
            at = 10_000 if stuck and label.startswith("ReLU") else (100 if label.startswith("ReLU") else 150)
            fake_run(tmp_path, by_seed[seed], 0.2, iterations=curve(at))
    ruled = claims.evaluate(claim, "smoke", 4, tmp_path)
    expected = (stats.smoothed_crossing(curve(150), claim.target_train_error).iteration
                / stats.smoothed_crossing(curve(100), claim.target_train_error).iteration)
    assert ruled.interval.n == 3 and ruled.interval.estimate == pytest.approx(expected)
    assert "never left chance" in ruled.summary and "ReLU seed 1" in ruled.summary
    unruled = claims.evaluate(replace(claim, chance=None), "smoke", 4, tmp_path)
    assert unruled.interval.n == 4 and unruled.censored  # the stuck ReLU run counted at its last iteration
    with pytest.raises(plan.RegistryError, match="chance"):
        plan.parse_claim("C2", {**_raw_entry("C2"), "chance": "never-below-80/1"})


def _raw_entry(claim_id):
    import tomllib

    return tomllib.loads(plan.REGISTRY_PATH.read_text())[claim_id]


def test_a_claim_that_shares_anothers_runs_is_one_member_of_the_family(tmp_path, monkeypatch):
    """C15b with same_as C15 (one tower, zero biases): no runs of its own, C15's numbers and verdict, and the family
    counts the two once. Under the constrained Holm the first step is at alpha / claims."""
    from reproduce.spec import registration

    c3, c15 = (replace(REGISTRY[i], estimator="paired-mean-t/1", seeds=4) for i in ("C3", "C15"))
    c15b = replace(REGISTRY["C15b"], estimator="paired-mean-t/1", seeds=4, same_when={"bias_init": "zero"})
    assert plan.planned_runs(c15b, "smoke", 4) == {}
    write_arms(tmp_path, c3, {"LRN": lambda s: 0.20, "no LRN": lambda s: 0.23 + 0.001 * s}, seeds=4)
    write_arms(tmp_path, c15, {"five conv layers": lambda s: 0.20,
                               "without conv3": lambda s: 0.20 + (0.004, 0.012, 0.002, 0.010)[s]}, seeds=4)
    registry = {c.id: c for c in (c3, c15, c15b)}
    monkeypatch.setattr(registration, "load", lambda path=None: {"correction_method": "constrained-holm"})
    # While C15's runs are still to come, the two are one member too (at p = 1): the family is the registered one.
    c3_only = tmp_path / "c3-only"
    write_arms(c3_only, c3, {"LRN": lambda s: 0.20, "no LRN": lambda s: 0.23 + 0.001 * s}, seeds=4)
    pending = {o.claim.id: o for o in decisions.evaluate_family("smoke", 4, c3_only, registry=registry)}
    assert pending["C15b"].verdict == pending["C15"].verdict == "missing" and pending["C3"].family == 4
    outcomes = {o.claim.id: o for o in decisions.evaluate_family("smoke", 4, tmp_path, registry=registry)}
    assert outcomes["C15b"].interval == outcomes["C15"].interval and "the same runs" in outcomes["C15b"].summary
    assert outcomes["C15b"].verdict == outcomes["C15"].verdict and outcomes["C15"].family == 4
    raw = {(c, side): p for c in ("C3", "C15") for side, p in
           (("direction", outcomes[c].p_direction), ("size", outcomes[c].p_size))}
    assert outcomes["C15"].adjusted == (stats.constrained_holm_adjusted(raw)[("C15", "direction")],
                                        stats.constrained_holm_adjusted(raw)[("C15", "size")])
    assert min(outcomes["C3"].levels) == pytest.approx(0.05 / 2)


def test_c9s_lighting_on_arm_is_the_colour_baseline_run_and_trains_once():
    """Issue 32: on colour data lighting `auto` is on, so C9's lighting-on arm computes the baseline: one config,
    one run id, one run in the grid (on greyscale, `off` is what `auto` does)."""
    from reproduce.spec import run_ids

    colour = {"dataset": "cifar10", "seed": 0}
    assert run_ids.run_id(params.resolve({**colour, "lighting": "on"})) == run_ids.run_id(params.resolve(colour))
    assert run_ids.run_id(params.resolve({**colour, "lighting": "off"})) != run_ids.run_id(params.resolve(colour))
    assert run_ids.run_id(params.resolve({"lighting": "off"})) == run_ids.run_id(params.resolve({}))
    runs = plan.grid_plan("smoke", 1, "lighting", {"dataset": "cifar10"})
    c9 = REGISTRY["C9"]
    ids = {run_ids.run_id(plan.arm_config(c9, arm, "smoke", 0, {"dataset": "cifar10"})) for arm in c9.arms}
    assert len(ids) == 2 and ids <= {run.run_id for run in runs}
    baseline = run_ids.run_id(params.resolve({"dataset": "cifar10", "seed": 0}, preset="smoke", network="alexnet"))
    assert baseline in ids
