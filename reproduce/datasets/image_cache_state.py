"""Which shards of an image folder's cache are complete, missing or stale, from its manifests alone
(verify=True also lists the folder and compares), and what to run to build the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reproduce.datasets.image_data import DataUnavailable
from reproduce.datasets.image_plan import (
    CACHE_DIR_NAME,
    SPLITS,
    check_folders,
    files_digest,
    list_folder,
    plan_path,
    read_json,
    split_limits,
    split_samples,
    stem_name,
)
from reproduce.datasets.image_shards import shard_status


@dataclass(frozen=True)
class SplitState:
    name: str  # the split's cache name: train-256, heldout-256, val-256-n1000, ...
    shards: int  # in its plan; 0 when it has none
    rows: int  # images in the split; 0 when it has no plan
    complete: tuple[int, ...] = ()
    missing: tuple[int, ...] = ()
    stale: tuple[int, ...] = ()
    why_stale: str = ""  # when the whole split is stale: why

    @property
    def whole(self) -> bool:
        return self.shards > 0 and len(self.complete) == self.shards

    def describe(self) -> str:
        if not self.shards:
            return f"{self.name} not planned"
        said = [f"{len(self.complete)} of {self.shards} shards complete"]
        said += [f"{words} {_indices(found)}" for words, found in (("missing", self.missing), ("stale", self.stale))
                 if found]
        return f"{self.name} " + ", ".join(said) + (f" ({self.why_stale})" if self.why_stale else "")


def _indices(found: tuple[int, ...]) -> str:
    shown = ", ".join(str(index) for index in found[:8])
    return shown + (f" and {len(found) - 8} more" if len(found) > 8 else "")


@dataclass(frozen=True)
class CacheState:
    data_dir: Path
    train_limit: int
    test_limit: int
    splits: dict[str, SplitState]  # "train", "heldout", "val"

    @property
    def whole(self) -> bool:
        return all(state.whole for state in self.splits.values())

    @property
    def message(self) -> str:
        """One line: the cache's state and, when it is not whole, the command that builds the rest."""
        cache_dir = self.data_dir / CACHE_DIR_NAME
        said = "; ".join(state.describe() for state in self.splits.values())
        if self.whole:
            return f"imagenet-folder: the cache under {cache_dir} is whole ({said})."
        limits = "".join(f" --{flag}-limit {value}" for flag, value in
                         (("train", self.train_limit), ("test", self.test_limit)) if value)
        count = max(state.shards for state in self.splits.values())
        shards = f"I/{count}` for I = 0..{count - 1}" if count else "I/N` for I = 0..N-1"
        return (f"imagenet-folder: the cache under {cache_dir} is not whole ({said}). Build it with `python -m "
                f"reproduce cache --data-dir {self.data_dir}{limits} --shard {shards}, one process each "
                f"(`--shards {count or 'N'} --executor submitit` runs them as a Slurm array), or all of it in one process "
                "without --shard.")

    def rows(self) -> dict[str, int]:
        return {split: state.rows for split, state in self.splits.items()}


def cache_state(data_dir: str | Path, *, train_limit: int = 0, test_limit: int = 0,
                verify: bool = False) -> CacheState:
    """Each split's shards, from its plan and their manifests (a few small reads each, no image looked at).
    verify=True also lists and stats every image and marks a split stale whose sample list has changed."""
    data_dir = Path(data_dir).expanduser()
    cache_dir = data_dir / CACHE_DIR_NAME
    limits = split_limits(train_limit, test_limit)
    plans = {split: read_json(plan_path(cache_dir, split, limit)) for split, limit in limits.items()}
    digests = _listed_digests(data_dir, train_limit, test_limit) if verify else None
    states = {split: _split_state(cache_dir, stem_name(split, limit), plans[split], plans["train"], digests)
              for split, limit in limits.items()}
    return CacheState(data_dir, train_limit, test_limit, states)


def _listed_digests(data_dir: Path, train_limit: int, test_limit: int) -> dict[str, str]:
    samples = split_samples(data_dir, list_folder(data_dir), train_limit, test_limit)
    return {split: files_digest(samples[split]) for split in SPLITS}


def _split_state(cache_dir: Path, name: str, plan: dict | None, train_plan: dict | None,
                 digests: dict[str, str] | None) -> SplitState:
    if plan is None:
        return SplitState(name, 0, 0)
    everything = tuple(range(len(plan["shards"])))
    planned = SplitState(name, len(everything), plan["rows"])
    if train_plan is not None and plan["listing_digest"] != train_plan["listing_digest"]:
        return _all_stale(planned, "planned from another listing of the folder than the training split")
    if digests is not None and digests[plan["split"]] != plan["files_digest"]:
        return _all_stale(planned, "the folder changed since it was planned: build without --shard, or remove "
                                   f"{plan_path(cache_dir, plan['split'], plan['limit'])} before building shards")
    status = {index: shard_status(cache_dir, plan, index) for index in everything}
    found = {word: tuple(i for i in everything if status[i] == word) for word in ("complete", "missing", "stale")}
    return SplitState(name, len(everything), plan["rows"], **found)


def _all_stale(planned: SplitState, why: str) -> SplitState:
    return SplitState(planned.name, planned.shards, planned.rows, stale=tuple(range(planned.shards)), why_stale=why)


def whole_cache_rows(data_dir: str | Path, *, train_limit: int = 0, test_limit: int = 0) -> dict[str, int]:
    """Images in each split of a whole cache, from its manifests; DataUnavailable, saying how to build it,
    when it is not whole."""
    state = cache_state(data_dir, train_limit=train_limit, test_limit=test_limit)
    if not state.whole:
        check_folders(state.data_dir)  # no folder at all: say so, rather than how to build from it
        raise DataUnavailable(state.message)
    return state.rows()
