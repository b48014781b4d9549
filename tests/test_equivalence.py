"""Training-code changes declared numerically equivalent: each declaration is retrained from git on this
machine and must give bit-identical weights; a change that alters the numbers is caught."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from reproduce.records import declared
from reproduce.tools import equivalence

ROOT = Path(__file__).resolve().parents[1]
DECLARED = declared.load_declarations()


def in_history(commit):
    found = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=ROOT, capture_output=True)
    return found.returncode == 0


def test_every_declaration_names_its_evidence_and_the_evidence_says_identical():
    for entry in DECLARED:
        evidence = json.loads((ROOT / entry.evidence).read_text())
        assert evidence["all_identical"] and evidence["runs"]
        assert set(r["run"] for r in evidence["runs"]) == set(equivalence.REFERENCE_FAMILIES)
        assert (evidence["earlier"]["training_sha256"], evidence["later"]["training_sha256"]) == (
            entry.earlier, entry.later)
        assert (evidence["earlier"]["commit"], evidence["later"]["commit"]) == (
            entry.earlier_commit, entry.later_commit)


@pytest.mark.parametrize("entry", DECLARED, ids=lambda d: f"{d.earlier[:8]}-{d.later[:8]}")
def test_a_declared_change_retrains_to_bit_identical_weights_on_this_machine(entry, tiny_fashion):
    for commit in (entry.earlier_commit, entry.later_commit):
        if not in_history(commit):
            pytest.skip(f"commit {commit[:10]} is not in this clone's history (a shallow clone?)")
    evidence = equivalence.check(entry.earlier_commit, entry.later_commit, tiny_fashion, ROOT)
    assert (evidence["earlier"]["training_sha256"], evidence["later"]["training_sha256"]) == (
        entry.earlier, entry.later)
    assert evidence["all_identical"], [r["run"] for r in evidence["runs"] if not r["identical"]]


def test_a_change_that_alters_the_numbers_is_caught(tiny_fashion, tmp_path):
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    shutil.copytree(ROOT / "reproduce", earlier / "reproduce")
    later = tmp_path / "later"
    shutil.copytree(earlier, later)
    train = later / "reproduce" / "training" / "train.py"
    source = train.read_text()
    assert 'config["seed"] * 1_000_003 + epoch' in source
    train.write_text(source.replace('config["seed"] * 1_000_003 + epoch', 'config["seed"] * 1_000_003 + epoch + 1'))
    one = {"cifar-18pct": equivalence.REFERENCE_RUNS["cifar-18pct"]}
    evidence = equivalence.compare_trees(earlier, later, tiny_fashion, one)
    assert evidence["earlier"]["training_sha256"] != evidence["later"]["training_sha256"]
    assert not evidence["all_identical"] and evidence["runs"][0]["later_weights"] is not None


ANALYSIS_BEFORE = ("reproduce/analysis.py", "reproduce/neighbours.py")  # before the layer folders


def analysis_units(commit):
    """(name -> portable unit) of the analysis code at a commit, wherever it lived then."""
    import re

    from reproduce.records import provenance
    from reproduce.runs import analysis

    units = {}
    for paths in (tuple(f"reproduce/{name}" for name in analysis.ANALYSIS_CODE), ANALYSIS_BEFORE):
        found = [subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True).stdout
                 for path in paths]
        if all(found):
            for body in found:
                for unit in provenance.portable_units(body.decode()):
                    named = re.search(r"^(?:async def|def|class)\s+(\w+)|^(\w+)\s*[:=]", unit, re.M)
                    units[(named.group(1) or named.group(2)) if named else unit] = unit
            return units
    raise AssertionError(f"no analysis code at {commit}")


@pytest.mark.parametrize("entry", declared.load_declarations(kind="analysis"), ids=lambda d: d.earlier_commit[:8])
def test_a_declared_move_of_the_analysis_code_changed_only_its_own_digest(entry):
    """The measures of final weights were not changed: the analysis code's definitions differ between the two
    commits only in those the declaration names, which compute and check its own digest."""
    for commit in (entry.earlier_commit, entry.later_commit):
        if not in_history(commit):
            pytest.skip(f"commit {commit[:10]} is not in this clone's history (a shallow clone?)")
    before, after = analysis_units(entry.earlier_commit), analysis_units(entry.later_commit)
    changed = {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
    named = set(entry.evidence.split(": ", 1)[1].split(", "))
    assert changed <= named and "compute" not in changed and "crop_errors" not in changed, changed
