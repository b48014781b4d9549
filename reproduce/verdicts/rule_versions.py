"""Each claim's registered versions: its rule as reproduce/spec/claims.toml said it, commit by commit.

Derived from the registry file's git history, not recorded by hand, so that no change of a rule
can go unlisted: a version is the claim's rule (kind, arms, metric, threshold, target, lr grid, ...)
as of a commit, and a new version starts whenever those change; wording and notes do not make one.
The working tree's registry, if it differs from the last commit, is the last version. Without git
(a tarball of the project) there is no history to show, and the book says so.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from reproduce.base.git import git_bytes, git_lines, git_text
from reproduce.records import results
from reproduce.spec import params, plan, registration
from reproduce.spec.plan import REGISTRY_PATH

# What decides a verdict; a change of anything else (title, quote, notes) is not a new rule.
RULE_KEYS = ("kind", "network", "conditions", "paper_arm", "other_arm", "metric", "threshold", "target_train_error",
             "lr_sweep", "tolerance", "check", "requires", "estimator", "crossing", "chance", "same_as", "same_when", "seeds")
# Its first commit registered the CPU study's confirmatory design (there, before the package had layer folders).
REGISTRATION = ("reproduce/spec/registration.toml", "reproduce/registration.toml")


@dataclass(frozen=True)
class Version:
    commit: str  # full hash, or "working tree"
    date: str  # ISO 8601, the commit's
    entry: dict[str, Any]  # the claim's whole registry entry at that commit


def rule_of(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: entry[key] for key in RULE_KEYS if key in entry}


def versions(claim_id: str, registry: Path = REGISTRY_PATH) -> list[Version]:
    """The claim's registered versions, oldest first ([] without git history)."""
    found: list[Version] = []
    for version in _history(str(Path(registry).resolve())):
        entry = version.get(claim_id)
        if entry is None:
            continue
        if not found or rule_of(found[-1].entry) != rule_of(entry["entry"]):
            found.append(Version(entry["commit"], entry["date"], entry["entry"]))
    return found


def first_records_date(registry: Path = REGISTRY_PATH) -> str | None:
    """When run records were first committed beside this registry - since the study's registration, where
    there is one (the records before it belong to an exploratory study): rules changed later were changed
    with results on the table."""
    root = repository_root(Path(registry))
    if root is None:
        return None
    since = registration_commit(root)
    span = [f"{since[0]}..HEAD"] if since else []
    dates = git_lines(root, "log", "--reverse", "--diff-filter=A", "--format=%cI", *span, "--", "results/runs")
    return dates[0] if dates else None


def registration_commit(root: Path, study: str | None = None) -> tuple[str, str] | None:
    """(commit, ISO date) of the commit that registered the study: the first whose registration says
    `study = "<study>"` (the current registration's study by default); for a registration that names no study
    (v2's), the commit that added the file."""
    if study is None:
        here = next((root / path for path in REGISTRATION if (root / path).exists()), None)
        study = registration.load(here).get("study") if here else None
    if study:
        found = git_lines(root, "log", "--format=%H %cI", "-S", f'study = "{study}"', "--", *REGISTRATION)
    else:
        found = git_lines(root, "log", "--diff-filter=A", "--format=%H %cI", "--", *REGISTRATION)
    return tuple(found[-1].split(" ", 1)) if found else None


@lru_cache(maxsize=4)
def _history(registry: str) -> list[dict[str, dict[str, Any]]]:
    """Per commit that touched the registry (then the working tree): claim id -> its entry. The file is
    followed through its moves: each commit's version is read at the path it had then."""
    path = Path(registry)
    root = repository_root(path)
    if root is None:
        return []
    versions, commit = [], None  # newest first: git log's --follow does not go with --reverse
    for line in git_lines(root, "log", "--follow", "--name-only", "--format=%H %cI", "--",
                          str(path.resolve().relative_to(root))):
        if re.fullmatch(r"[0-9a-f]{40} \S+", line):
            commit, date = line.split(" ", 1)
        elif line.strip() and commit:
            versions.append((commit, date, line.strip()))
            commit = None
    history = []
    for commit, date, at in reversed(versions):
        text = git_text(root, "show", f"{commit}:{at}")
        if text is not None:
            history.append(_entries(text, commit, date))
    if history:  # a registry edited but not committed yet is the newest version
        history.append(_entries(path.read_text(), "working tree", ""))
    return history


def repository_root(path: Path) -> Path | None:
    """The git checkout a file is in (None outside one)."""
    found = git_text(path.resolve().parent, "rev-parse", "--show-toplevel")
    return Path(found.strip()).resolve() if found else None


def _entries(text: str, commit: str, date: str) -> dict[str, dict[str, Any]]:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}
    return {claim_id: {"commit": commit, "date": date, "entry": entry} for claim_id, entry in raw.items()
            if isinstance(entry, dict)}


def order_problems(root: Path, records: list[dict[str, Any]]) -> list[str]:
    """Why a confirmatory record may not count as made after the registration: its code is not a clean
    checkout, or its commit does not descend from the registration commit. [] when every record is in order."""
    since = registration_commit(root)
    if since is None:
        return ["no commit registered the study (reproduce/spec/registration.toml is not in the history)"]
    problems = []
    for record in records:
        code = record.get("code") or {}
        commit = code.get("commit")
        if not commit or code.get("dirty") is not False:
            problems.append(f"{record['run_id']}: made by {'uncommitted' if commit else 'unknown'} code")
        elif git_bytes(root, "merge-base", "--is-ancestor", since[0], commit) is None:
            problems.append(f"{record['run_id']}: its commit {commit[:10]} does not descend from the "
                            f"registration commit {since[0][:10]}")
    return problems


def confirmatory_records(results_dir: str | Path, preset: str = "cpu") -> list[dict[str, Any]]:
    """The finished records of the preset's registered runs (its whole grid at its seeds) in results_dir."""
    runs = plan.grid_plan(preset, params.get_preset(preset).seeds)
    return [record for record in (complete_record(results_dir, run.config) for run in runs) if record]


def complete_record(results_dir: str | Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """The run's record when it is complete; None when missing, unreadable or not finished."""
    try:
        record = results.read_record(results.record_path(results_dir, config))
    except (OSError, ValueError):
        return None
    return record if record.get("status") == "complete" else None
