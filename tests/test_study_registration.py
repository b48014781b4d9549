"""The CPU study's registration (issue 23): committed before its confirmatory runs, kept apart from the
pilot's seeds, and sized by numbers that follow from the committed pilot records."""

import math
import shutil
import subprocess
from pathlib import Path

import pytest
from test_rule_versions import commit_all, new_repo

from reproduce.report import claims_page, environment_page
from reproduce.spec import params, plan, registration
from reproduce.verdicts import pilot, rule_versions, sizing

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
REGISTERED = [c for c in plan.load_registry().values() if c.estimator]
needs_git = pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                               reason="needs the project's git history")


def git(repo, *args):
    done = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True)
    return done.stdout.strip()


@needs_git
def test_every_confirmatory_record_descends_from_the_registration_commit():
    assert rule_versions.registration_commit(ROOT) is not None, "reproduce/spec/registration.toml is not committed"
    records = rule_versions.confirmatory_records(RESULTS, "cpu")
    assert rule_versions.order_problems(ROOT, records) == []


def test_the_order_check_refuses_a_record_made_before_the_registration_or_by_uncommitted_code(tmp_path):
    repo = new_repo(tmp_path)
    (repo / "reproduce" / "train.py").write_text("# before\n")
    commit_all(repo, "code before the registration")
    before = git(repo, "rev-parse", "HEAD")
    (repo / "reproduce" / "registration.toml").write_text("preset = 'cpu'\n")
    commit_all(repo, "register")
    after = git(repo, "rev-parse", "HEAD")

    def record(name, commit, dirty=False):
        return {"run_id": name, "code": {"commit": commit, "dirty": dirty}}

    problems = rule_versions.order_problems(repo, [record("early", before), record("on-time", after),
                                                   record("dirty", after, dirty=True)])
    assert len(problems) == 2
    assert problems[0].startswith("early: its commit") and "does not descend" in problems[0]
    assert problems[1] == "dirty: made by uncommitted code"


def test_the_pilot_seeds_are_never_a_verdicts():
    design = registration.load()
    assert tuple(design["pilot_seeds"]) == pilot.PILOT_SEEDS
    preset = params.get_preset("cpu")
    for claim in REGISTERED:
        seeds = plan.claim_seeds(claim, "cpu", preset.seeds)
        assert len(seeds) == claim.seeds, claim.id
        assert not set(seeds) & set(pilot.PILOT_SEEDS), claim.id
        assert not set(seeds) & set(pilot.V1_SEEDS), claim.id  # nor the exploratory study's


def test_every_tested_claim_is_registered_with_an_estimator_seeds_and_for_a_crossing_a_smoothing_rule():
    tested = [c for c in plan.load_registry().values() if c.trains and not c.requires]
    assert {c.id for c in tested} == {c.id for c in REGISTERED}
    assert len(tested) == 14
    for claim in tested:
        assert claim.estimator in plan.ESTIMATORS and claim.seeds >= 2, claim.id
        if claim.kind == "ratio":
            assert claim.crossing == "smoothed-3/1", claim.id
            assert all("lr" in arm.settings for arm in claim.arms) or claim.id != "C1"
    assert params.get_preset("cpu").seeds == max(c.seeds for c in tested)


def test_the_registered_sizing_follows_from_the_committed_pilot_records():
    design = registration.load()
    spread = {**sizing.spreads(RESULTS / pilot.PILOT_DIR, pilot.design_named(design["design"]["chosen"])),
              **sizing.ratio_spreads(RESULTS / pilot.PILOT_DIR), **sizing.v1_spreads(RESULTS)}
    for measure, registered in design["spreads"].items():
        assert math.isclose(spread[measure].sd, registered["sd"], rel_tol=1e-6), measure
        assert spread[measure].df == registered["df"], measure
    affordable = {network: design["affordable_seeds"][network] for network in params.NETWORKS}
    sized = sizing.size_claims(plan.load_registry(), spread, affordable, design["alpha"])
    registry = plan.load_registry()
    for sized_claim in sized:
        assert registry[sized_claim.claim].seeds == sized_claim.seeds, sized_claim.claim
        assert math.isclose(design["detectable"][sized_claim.claim], sized_claim.detectable, rel_tol=1e-6), \
            sized_claim.claim
    chosen = sizing.c1_choice(RESULTS / pilot.PILOT_DIR)
    assert {arm.settings["activation"]: arm.settings["lr"] for arm in registry["C1"].arms} == chosen


def test_the_chosen_design_is_in_the_regime_its_claims_are_about():
    """Issue 23: the baseline within about a point of twice as long, and the no-dropout arm overfitting."""
    design = registration.load()["design"]
    found = {r.design.name: r for r in pilot.design_results(RESULTS / pilot.PILOT_DIR)}
    chosen = found[design["chosen"]]
    assert chosen.seeds == len(pilot.PILOT_SEEDS)
    assert abs(chosen.longer_minus_baseline) <= 0.01
    assert chosen.gaps["no dropout"] >= 0.03
    cpu = params.resolve({}, preset="cpu", network="alexnet")
    assert {k: cpu[k] for k in ("epochs", "train_limit", "test_limit")} == \
        {"test_limit": 0, **{k: v for k, v in chosen.design.settings.items() if k in ("epochs", "train_limit")}}


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
