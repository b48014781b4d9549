"""The one way the package asks git something: the commit and state of the code, the history of the
claims registry and of the training modules, a commit's tree. Where git is missing, or the folder is
no checkout (a tarball, a copy on a lent GPU), the answer is None and callers say so."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_bytes(root: str | Path, *args: str, stdin: bytes | None = None, timeout: float = 120) -> bytes | None:
    """git's standard output for `git -C root ARGS`, or None when it cannot answer."""
    try:
        done = subprocess.run(["git", "-C", str(root), *args], input=stdin, capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def git_text(root: str | Path, *args: str) -> str | None:
    out = git_bytes(root, *args)
    return None if out is None else out.decode()


def git_lines(root: str | Path, *args: str) -> list[str]:
    return [line for line in (git_text(root, *args) or "").splitlines() if line.strip()]
