"""The one file lock: an exclusive flock on a file that names its holder's pid.

The kernel drops a dead process's lock, so a kill -9 leaves nothing to clean, and there is no
timeout: a waiter waits as long as the holder works (a run's training, an ImageNet cache's build).
Used for a run (reproduce.runs.runner: two processes never train one run) and for an image folder's cache
(reproduce.datasets.data: one process builds it, the others wait and then read it).
"""

from __future__ import annotations

import fcntl
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def held(path: str | Path, waiting: str) -> Iterator[None]:
    """Hold the lock on `path` for the block. When another process holds it, say `waiting` (with the
    holder's pid) once on stderr, then wait for it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"{waiting} (held by pid {holder(path)}); waiting for it", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def holder(path: str | Path) -> int | None:
    """The pid that last took the lock (it may have finished since)."""
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None
