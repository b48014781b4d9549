"""The CPU study's registration (study v3, issue 31): committed before its confirmatory runs, kept apart from the
pilots' and the earlier studies' seeds, and sized by numbers that follow from the committed records."""

import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_rule_versions import commit_all, new_repo

from reproduce.report import claims_page, environment_page
from reproduce.spec import params, plan, registration
from reproduce.verdicts import pilot, pilot_v3, rule_versions, sizing

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
REGISTERED = [c for c in plan.load_registry().values() if c.estimator]
EARLIER_SEEDS = {*range(0, 3), *range(100, 114), *pilot.V2_PILOT_SEEDS, *pilot_v3.PILOT_SEEDS}  # v1, v2, both pilots
needs_git = pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                               reason="needs the project's git history")


def git(repo, *args):
    done = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True)
    return done.stdout.strip()


@needs_git
def test_every_confirmatory_record_descends_from_the_registration_commit():
    assert registration.load()["study"] == "v3"
    assert rule_versions.registration_commit(ROOT) is not None, "study v3 is not registered in a commit"
    records = rule_versions.confirmatory_records(RESULTS, "cpu")
    assert rule_versions.order_problems(ROOT, records) == []


@needs_git
def test_every_confirmatory_alexnet_record_followed_the_registered_schedule():
    """Issue 31: every v3 record's lr follows the registered schedule (0.01, then tenfold lower after each
    registered epoch), read from the record, whatever its config says."""
    drops = [int(e) for e in params.get_preset("cpu").networks["alexnet"]["lr_drop_epochs"].split(",")]
    for record in rule_versions.confirmatory_records(RESULTS, "cpu"):
        if record["config"]["model"] != "alexnet-small":
            continue
        expected = [0.01 * 0.1 ** sum(epoch > d for d in drops) for epoch in range(1, len(record["epochs"]) + 1)]
        assert [e["lr"] for e in record["epochs"]] == pytest.approx(expected), record["run_id"]


def test_the_order_check_refuses_a_record_made_before_the_registration_or_by_uncommitted_code(tmp_path):
    repo = new_repo(tmp_path)
    (repo / "reproduce" / "spec").mkdir(parents=True)
    (repo / "reproduce" / "train.py").write_text("# before\n")
    (repo / "reproduce" / "spec" / "registration.toml").write_text('study = "v2"\n')
    commit_all(repo, "code and an earlier study's registration")
    before = git(repo, "rev-parse", "HEAD")
    (repo / "reproduce" / "spec" / "registration.toml").write_text('study = "v3"\n')
    commit_all(repo, "register v3")
    after = git(repo, "rev-parse", "HEAD")
    assert rule_versions.registration_commit(repo)[0] == after
    assert rule_versions.registration_commit(repo, "v2")[0] == before

    def record(name, commit, dirty=False):
        return {"run_id": name, "code": {"commit": commit, "dirty": dirty}}

    problems = rule_versions.order_problems(repo, [record("early", before), record("on-time", after),
                                                   record("dirty", after, dirty=True)])
    assert len(problems) == 2
    assert problems[0].startswith("early: its commit") and "does not descend" in problems[0]
    assert problems[1] == "dirty: made by uncommitted code"


def test_no_confirmatory_seed_is_a_pilots_or_an_earlier_studys():
    design = registration.load()
    assert tuple(design["pilot_seeds"]) == pilot_v3.PILOT_SEEDS
    preset = params.get_preset("cpu")
    assert preset.first_seed == design["first_seed"]
    for claim in REGISTERED:
        seeds = plan.claim_seeds(claim, "cpu", preset.seeds)
        assert len(seeds) == claim.seeds, claim.id
        assert not set(seeds) & EARLIER_SEEDS, claim.id


def test_every_tested_claim_is_registered_with_an_estimator_seeds_and_for_a_crossing_a_smoothing_rule():
    tested = [c for c in plan.load_registry().values() if c.trains and not c.requires]
    assert {c.id for c in tested} == {c.id for c in REGISTERED}
    members = sizing.tested_claims(plan.load_registry())
    assert len(members) == 13 and "C15b" not in {c.id for c in members}  # C15b takes C15's runs (same_as)
    for claim in tested:
        assert claim.estimator in plan.ESTIMATORS and claim.seeds >= 2, claim.id
        if claim.kind == "ratio":
            assert claim.crossing == "smoothed-3/1", claim.id
    assert plan.load_registry()["C1"].chance == "never-below-80/1"
    assert params.get_preset("cpu").seeds == max(c.seeds for c in tested)
    assert registration.load()["correction_method"] == "constrained-holm"


def test_the_registered_sizing_follows_from_the_committed_records():
    design = registration.load()
    numbers = sizing.registration_numbers(RESULTS, design["alpha"])
    for measure, registered in design["spreads"].items():
        assert math.isclose(numbers.spreads[measure].sd, registered["sd"], rel_tol=1e-6), measure
        assert numbers.spreads[measure].df == registered["df"], measure
    registry = plan.load_registry()
    for sized in numbers.sizing:
        assert registry[sized.claim].seeds == sized.seeds == design["seeds"][sized.claim], sized.claim
        assert (sized.needed or 0) == design["seeds_needed"][sized.claim], sized.claim
        assert math.isclose(design["detectable"][sized.claim], sized.detectable, rel_tol=1e-6), sized.claim
    assert registry["C15b"].seeds == registry["C15"].seeds
    assert {arm.settings["activation"]: arm.settings["lr"] for arm in registry["C1"].arms} == numbers.c1_lrs
    assert registry["C1"].target_train_error == design["c1_target"] == round(numbers.c1_target, 4)
    assert numbers.study_hours <= design["budget_hours"]
    assert design["study_hours"] == pytest.approx(numbers.study_hours, abs=0.005)


def test_the_chosen_design_is_the_presets_and_in_the_regime_its_claims_are_about():
    """Issue 31: the baseline close to the same net trained twice as long, the overfitting arms overfitting, LRN
    dividing unevenly, and the pooling arms leaving the same maps."""
    chosen = pilot_v3.design_summary(RESULTS / pilot.PILOT_DIR, pilot_v3.CHOSEN)
    assert chosen.seeds == len(pilot_v3.PILOT_SEEDS)
    assert abs(chosen.longer_minus_baseline) <= registration.load()["design"]["converged_within"]
    assert chosen.gaps["no dropout"] > chosen.gaps["baseline"] + 0.01
    assert chosen.gaps["no augmentation"] > chosen.gaps["baseline"] + 0.01
    assert pilot_v3.pooled_map("overlapping") == pilot_v3.pooled_map("non-overlapping")
    for seed in (300, 999):
        assert pilot_v3.alexnet_config("baseline", seed) == params.resolve({"seed": seed}, preset="cpu",
                                                                            network="alexnet")


def test_the_study_time_counts_measured_runs_and_prices_the_rest_per_epoch(tmp_path):
    """The book's study time: measured runs at their own time, the rest at their network's median seconds per
    epoch among them (the pilot's before any), scheduled on 2 and on 16 one-thread workers."""
    from reproduce.grids import estimates
    from reproduce.records import results

    planned = plan.grid_plan("cpu", params.get_preset("cpu").seeds)
    per_epoch = registration.load()["seconds_per_epoch"]
    before = environment_page.study_time_lines(tmp_path)[0]
    pilot_seconds = [per_epoch[run.network] * run.config["epochs"] for run in planned]
    assert "0 of them measured" in before
    assert f"**{estimates.wall_time(pilot_seconds, 2) / 3600:.1f} hours on 2 cores**" in before
    assert f"**{estimates.wall_time(pilot_seconds, 16) / 3600:.1f} hours on 16 cores**" in before

    first = planned[0]  # an AlexNet baseline run, measured at 3 times the pilot's seconds per epoch
    record = results.new_record(first.config, "cpu")
    record.update({"run_id": first.run_id, "status": "complete", "config": first.config,
                   "totals": {"train_time_s": 3 * per_epoch["alexnet"] * first.config["epochs"], "eval_time_s": 0.0}})
    results.write_record(results.record_path(tmp_path, first.config), record)
    slower = [(3 if run.network == "alexnet" else 1) * s for run, s in zip(planned, pilot_seconds)]
    after = environment_page.study_time_lines(tmp_path)[0]
    assert "1 of them measured" in after
    assert f"**{estimates.wall_time(slower, 2) / 3600:.1f} hours on 2 cores**" in after


def test_a_grid_of_one_ablation_is_never_shown_as_the_whole_study():
    """The title page's 'trained from empty in N min' names what that grid ran: a `--only lrn --seeds 2`
    rehearsal is labelled as part of the preset, and only a grid of every run is the preset."""
    seeds = params.get_preset("cpu").seeds
    part = {"preset": "cpu", "seeds": 2, "options": {"only": "lrn"}, "runs": [{}] * 4}
    whole = {"preset": "cpu", "seeds": seeds, "options": {"only": ""}, "runs": [{}] * 132}
    assert claims_page._grid_scope(part) == "part of preset `cpu` (`--only lrn --seeds 2`: 4 runs)"
    assert claims_page._grid_scope(whole) == "the whole preset `cpu`, 132 runs planned"
    assert claims_page._grid_scope({**whole, "seeds": seeds - 1}).startswith("part of preset `cpu`")


def test_the_earlier_studies_are_shown_as_exploratory_with_their_own_verdicts():
    lines = "\n".join(claims_page.exploratory_section(RESULTS))
    assert "## Exploratory: the second CPU study (v2)" in lines and "## Exploratory: the first CPU study (v1)" in lines
    assert lines.index("(v2)") < lines.index("(v1)")


def test_the_registration_table_shows_a_ratio_no_seed_count_can_detect_in_words_not_as_a_huge_number():
    """C12's pilot spread (log-ratio sd 9.4 on 1 df) makes its 'smallest detectable ratio' astronomical at 4 seeds:
    the table says none is within reach instead of printing a 17-digit ratio."""
    from reproduce.report import methods_page

    registry = plan.load_registry()
    assert methods_page._detectable(registry["C12"], 3.7e16) == "none within reach (over 100x)"
    assert methods_page._detectable(registry["C1"], 1.8) == "1.80x"
    assert methods_page._detectable(registry["C3"], 0.0185) == "1.85 points"
    table = "\n".join(methods_page.registration_section(RESULTS))
    assert not any(len(number) > 6 for number in re.findall(r"\d+(?=\.\d\dx)", table)), table
