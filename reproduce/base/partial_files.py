"""Files that are either whole or absent: each is written under a temporary name beside it
(<name>.partial-<pid>), flushed to disk, and renamed into place only when complete.

A write that raises removes its temporary file; one that is killed leaves it, and whoever writes that
file next (holding the lock that makes it the only writer) removes such leftovers first (`leftovers`).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PARTIAL = ".partial-"


def partial_name(path: Path) -> Path:
    # Per process, so two processes writing the same file at once never write one temporary file.
    return path.with_name(f"{path.name}{PARTIAL}{os.getpid()}")


@contextmanager
def written_atomically(path: Path) -> Iterator[Path]:
    """Yield the temporary name to write `path` under; when the block ends normally, flush it to disk
    and rename it to `path` (one step: a reader sees the old file or the new one, never half)."""
    partial = partial_name(path)
    try:
        yield partial
        _flush_to_disk(partial)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _flush_to_disk(path: Path) -> None:
    # Without it a machine that crashes after the rename could leave the new name on unwritten blocks.
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def leftovers(path: Path) -> list[Path]:
    """Temporary files of `path` that writes killed midway left behind."""
    return sorted(path.parent.glob(f"{path.name}{PARTIAL}*"))
