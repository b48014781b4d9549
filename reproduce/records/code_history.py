"""Which commit first had a given training code: records name a digest; git history names the commit.

A record holds the digest of the training modules that made it (provenance.training_digest). To show
a reader where that code lives, the commits that touched those modules are walked oldest first, the
digest recomputed from each commit's files as that commit's code computed it (by layer folders, or by
the flat list of modules before them), and the first commit with each digest kept. A digest made with
another list of training modules (older records) is found in no commit, and is shown as such.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from reproduce.base.git import git_bytes, git_lines
from reproduce.base.paths import PROJECT_ROOT
from reproduce.records.provenance import (
    FLAT_TRAINING_MODULES,
    TRAINING_LAYERS,
    code_digest,
    portable_digest,
    portable_units,
)


def first_commit_with(training_sha256: str | None, root: Path = PROJECT_ROOT) -> tuple[str, str] | None:
    """(commit, ISO date) of the first commit whose training modules have this digest, or None."""
    return _first_commits(str(root)).get(training_sha256 or "")


@lru_cache(maxsize=2)
def _first_commits(root: str) -> dict[str, tuple[str, str]]:
    """Digest -> the first commit with it: the layered digest where the commit has the layer folders, the flat
    one (FLAT_TRAINING_MODULES, by name and in order) before."""
    layered = [f"reproduce/{layer}" for layer in TRAINING_LAYERS]
    flat = [f"reproduce/{name}.py" for name in FLAT_TRAINING_MODULES]
    commits = [line.split(" ", 1) for line in git_lines(root, "log", "--reverse", "--format=%H %cI", "--", *flat,
                                                        *layered)]
    first: dict[str, tuple[str, str]] = {}
    for commit, date in commits:
        paths = [p for p in git_lines(root, "ls-tree", "-r", "--name-only", commit, "--", *layered) if p.endswith(".py")]
        if paths:
            bodies = _files(root, commit, paths)
            digest = None if None in bodies else portable_digest([u for b in bodies for u in portable_units(b.decode())])
        else:
            bodies = _files(root, commit, flat)
            digest = None if None in bodies else code_digest([(Path(p).name, b) for p, b in zip(flat, bodies)])
        if digest:  # None: a training module did not exist yet at this commit
            first.setdefault(digest, (commit, date))
    return first


def _files(root: str, commit: str, paths: list[str]) -> list[bytes | None]:
    blobs = git_bytes(root, "cat-file", "--batch", stdin="".join(f"{commit}:{path}\n" for path in paths).encode())
    return _split_batch(blobs) if blobs is not None else [None] * len(paths)


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
