"""Which commit first had a given training code: records name a digest; git history names the commit.

A record holds the digest of the training modules that made it (results.training_digest). To show
a reader where that code lives, the commits that touched those modules are walked oldest first, the
digest recomputed from each commit's files, and the first commit with each digest kept. A digest made
with another list of training modules (older records) is found in no commit, and is shown as such.
"""

from __future__ import annotations

import hashlib
import subprocess
from functools import lru_cache
from pathlib import Path

from reproduce.results import PROJECT_ROOT, TRAINING_MODULES


def first_commit_with(training_sha256: str | None, root: Path = PROJECT_ROOT) -> tuple[str, str] | None:
    """(commit, ISO date) of the first commit whose training modules have this digest, or None."""
    return _first_commits(str(root)).get(training_sha256 or "")


@lru_cache(maxsize=2)
def _first_commits(root: str) -> dict[str, tuple[str, str]]:
    paths = [f"reproduce/{name}.py" for name in TRAINING_MODULES]
    log = _run(root, ["git", "log", "--reverse", "--format=%H %cI", "--", *paths])
    if log is None:
        return {}
    commits = [line.split(" ", 1) for line in log.decode().splitlines() if line.strip()]
    wanted = "".join(f"{commit}:{path}\n" for commit, _ in commits for path in paths)
    blobs = _run(root, ["git", "cat-file", "--batch"], wanted.encode())
    if blobs is None:
        return {}
    contents = _split_batch(blobs)
    first: dict[str, tuple[str, str]] = {}
    for index, (commit, date) in enumerate(commits):
        files = contents[index * len(paths):(index + 1) * len(paths)]
        if any(body is None for body in files):
            continue  # a training module did not exist yet at this commit
        digest = hashlib.sha256()
        for path, body in zip(paths, files):  # in TRAINING_MODULES' order, as results.source_digest
            digest.update(Path(path).name.encode())
            digest.update(body)
        first.setdefault(digest.hexdigest(), (commit, date))
    return first


def _split_batch(output: bytes) -> list[bytes | None]:
    """git cat-file --batch's answers, in order: a file's bytes, or None where it was missing."""
    found, at = [], 0
    while at < len(output):
        end = output.index(b"\n", at)
        header = output[at:end].split()
        if header[-1] == b"missing":
            found.append(None)
            at = end + 1
            continue
        size = int(header[2])
        found.append(output[end + 1:end + 1 + size])
        at = end + 1 + size + 1
    return found


def _run(root: str, command: list[str], stdin: bytes | None = None) -> bytes | None:
    try:
        done = subprocess.run(command, cwd=root, input=stdin, capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None
