"""Each claim's registered versions from git history, the code digest's first commit, and claims --json."""

import json
import shutil
import subprocess

import pytest

from reproduce import cli
from reproduce.base.paths import PROJECT_ROOT
from reproduce.records import code_history, provenance
from reproduce.spec import plan
from reproduce.verdicts import rule_versions

HAS_GIT = shutil.which("git") is not None
pytestmark = pytest.mark.skipif(not HAS_GIT, reason="needs git")


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def new_repo(tmp_path):
    repo = tmp_path / "repo"
    (repo / "reproduce").mkdir(parents=True)
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "test@example.org")
    git(repo, "config", "user.name", "test")
    return repo


def commit_all(repo, message):
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def committed_registry(tmp_path):
    """Today's registry, committed in a new repository."""
    repo = new_repo(tmp_path)
    registry = repo / "reproduce" / "claims.toml"
    shutil.copy(plan.REGISTRY_PATH, registry)
    commit_all(repo, "register")
    return repo, registry


def edit_c3(registry, old, new):
    text = registry.read_text()
    c3 = text.index("[C3]")
    registry.write_text(text[:c3] + text[c3:].replace(old, new, 1))


def test_a_threshold_changed_after_a_commit_is_a_second_version_and_wording_is_not(tmp_path):
    repo, registry = committed_registry(tmp_path)
    edit_c3(registry, 'title = "Local response', 'title = "LRN (reworded)')
    commit_all(repo, "wording only")
    edit_c3(registry, "threshold = 0.005", "threshold = 0.01")
    commit_all(repo, "C3's threshold doubled")
    versions = rule_versions.versions("C3", registry)
    assert [v.entry["threshold"] for v in versions] == [0.005, 0.01]
    assert all(len(v.commit) == 40 and v.date for v in versions)
    assert len(rule_versions.versions("C4", registry)) == 1


def test_an_uncommitted_rule_is_the_last_version(tmp_path):
    _, registry = committed_registry(tmp_path)
    edit_c3(registry, "threshold = 0.005", "threshold = 0.02")
    versions = rule_versions.versions("C3", registry)
    assert [v.commit for v in versions][-1] == "working tree" and versions[-1].entry["threshold"] == 0.02


def test_without_git_history_there_are_no_versions(tmp_path):
    (tmp_path / "reproduce").mkdir()
    shutil.copy(plan.REGISTRY_PATH, tmp_path / "reproduce" / "claims.toml")
    assert rule_versions.versions("C1", tmp_path / "reproduce" / "claims.toml") == []


def test_the_first_commit_with_a_training_digest_is_found_and_a_move_keeps_it(tmp_path):
    """The training layers copied into a fresh repository: the first commit with today's digest is found; a
    comment, and a module moved to another folder with the imports that name it, keep the digest."""
    repo = new_repo(tmp_path)
    for layer in provenance.TRAINING_LAYERS:
        shutil.copytree(PROJECT_ROOT / "reproduce" / layer, repo / "reproduce" / layer,
                        ignore=shutil.ignore_patterns("__pycache__"))
    commit_all(repo, "training code")
    first = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    with open(repo / "reproduce" / "training" / "train.py", "a") as handle:
        handle.write("\n# a comment is no change of code\n")
    subprocess.run(["git", "-C", str(repo), "mv", "reproduce/nets/layers.py", "reproduce/datasets/layers.py"], check=True)
    for path in (repo / "reproduce").rglob("*.py"):
        path.write_text(path.read_text().replace("reproduce.nets.layers", "reproduce.datasets.layers"))
    commit_all(repo, "a comment and a move")
    found = code_history.first_commit_with(provenance.training_digest(), root=repo)
    assert found is not None and found[0] == first
    with open(repo / "reproduce" / "training" / "train.py", "a") as handle:
        handle.write("\nSOMETHING_NEW = 1\n")
    commit_all(repo, "code")
    assert len(code_history._first_commits.__wrapped__(str(repo))) == 2  # the edit of code is another digest
    assert code_history.first_commit_with("0" * 64, root=repo) is None


def test_claims_json_gives_every_claim_with_its_fields(tmp_path, capsys):
    status = cli.main(["claims", "--preset", "smoke", "--results-dir", str(tmp_path), "--json"])
    assert status == 0
    found = json.loads(capsys.readouterr().out)
    assert set(found) == set(plan.load_registry())
    for claim_id, entry in found.items():
        assert {"verdict", "preliminary", "estimate", "low", "high", "n", "unit", "per_seed", "run_ids", "registered",
                "p_direction", "p_size", "holm_adjusted", "machine_noise", "proxy",
                "versions"} <= set(entry), claim_id
    assert found["C3"]["verdict"] == "missing" and found["C3"]["unit"] == "difference"
    assert found["C1"]["unit"] == "ratio" and found["C3"]["proxy"].startswith("smoke: 1/8-width AlexNet at 32 px, fashion-mnist")
