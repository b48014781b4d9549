"""Which commit first had a given training code: records name a digest; git history names the commit.

A record holds the digest of the training modules that made it (results.training_digest). To show
a reader where that code lives, the commits that touched those modules are walked oldest first, the
digest recomputed from each commit's files, and the first commit with each digest kept. A digest made
with another list of training modules (older records) is found in no commit, and is shown as such.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from reproduce.git import git_bytes, git_lines
from reproduce.results import PROJECT_ROOT, TRAINING_MODULES, code_digest


def first_commit_with(training_sha256: str | None, root: Path = PROJECT_ROOT) -> tuple[str, str] | None:
    """(commit, ISO date) of the first commit whose training modules have this digest, or None."""
    return _first_commits(str(root)).get(training_sha256 or "")


@lru_cache(maxsize=2)
def _first_commits(root: str) -> dict[str, tuple[str, str]]:
    paths = [f"reproduce/{name}.py" for name in TRAINING_MODULES]
    commits = [line.split(" ", 1) for line in git_lines(root, "log", "--reverse", "--format=%H %cI", "--", *paths)]
    wanted = "".join(f"{commit}:{path}\n" for commit, _ in commits for path in paths)
    blobs = git_bytes(root, "cat-file", "--batch", stdin=wanted.encode())
    if blobs is None:
        return {}
    contents = _split_batch(blobs)
    first: dict[str, tuple[str, str]] = {}
    for index, (commit, date) in enumerate(commits):
        files = contents[index * len(paths):(index + 1) * len(paths)]
        if any(body is None for body in files):
            continue  # a training module did not exist yet at this commit
        # in TRAINING_MODULES' order, as results.source_digest
        digest = code_digest([(Path(path).name, body) for path, body in zip(paths, files)])
        first.setdefault(digest, (commit, date))
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
