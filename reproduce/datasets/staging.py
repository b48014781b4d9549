"""An image cache's shards copied to node-local storage (`stage_dir`: local NVMe, /dev/shm) before a run reads
them, so that every epoch reads the node's disk or memory instead of the shared filesystem. One copy a node:
each shard is copied under a lock in the stage folder, through a temporary name, and its manifest last; the
next run on that node (or one that waited for the lock) finds it whole and copies nothing.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from reproduce.base import locks
from reproduce.base.partial_files import leftovers, written_atomically

SHARD_SUFFIXES = (".npy", ".sum.npy")  # what a load reads of a shard; its manifest marks the copy whole


def staged_folder(stage_dir: str | Path, plans: dict[str, dict]) -> Path:
    """The stage folder of this cache: named by its plans' digests, so two caches never share one."""
    key = hashlib.sha256("".join(plan["files_digest"] for plan in plans.values()).encode()).hexdigest()[:16]
    return Path(stage_dir).expanduser() / f"reproduce-cache-{key}"


def stage(cache_dir: Path, plans: dict[str, dict], stage_dir: str | Path) -> Path:
    """Copy every shard the plans name from cache_dir to the stage folder unless a whole copy is there;
    returns the folder to read them from."""
    target = staged_folder(stage_dir, plans)
    target.mkdir(parents=True, exist_ok=True)
    for plan in plans.values():
        for shard in plan["shards"]:
            _stage_shard(cache_dir, target, shard["name"])
    return target


def _stage_shard(cache_dir: Path, target: Path, name: str) -> None:
    manifest = f"{name}.shard.json"
    if _whole(cache_dir, target, manifest):
        return
    with locks.held(target / f"{name}.stage.lock", f"{name}: another run on this node is staging it"):
        if _whole(cache_dir, target, manifest):  # staged while this one waited
            return
        for suffix in (*SHARD_SUFFIXES, ".shard.json"):
            for leftover in leftovers(target / f"{name}{suffix}"):  # a killed copy's
                leftover.unlink()
        for suffix in (*SHARD_SUFFIXES, ".shard.json"):  # the manifest last: it says the copy is whole
            with written_atomically(target / f"{name}{suffix}") as partial:
                shutil.copyfile(cache_dir / f"{name}{suffix}", partial)


def _whole(cache_dir: Path, target: Path, manifest: str) -> bool:
    copy = target / manifest
    return copy.exists() and copy.read_bytes() == (cache_dir / manifest).read_bytes()
