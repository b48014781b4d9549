"""Run records: one self-describing JSON file per run, written atomically.

A record holds everything needed to judge a number without asking anyone: the resolved
config and its hash, the curves, the timings, the status, the code version (git commit and
dirty flag), package versions and the device. Records live in <results_dir>/runs/.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterator

from reproduce.records.provenance import git_state, is_current_code, package_versions
from reproduce.spec.run_ids import config_hash, run_id

if TYPE_CHECKING:
    pass

SCHEMA_VERSION = 1
STATUSES = ("running", "complete", "diverged", "failed")


def runs_dir(results_dir: str | Path) -> Path:
    return Path(results_dir) / "runs"


def record_path(results_dir: str | Path, config: dict[str, Any]) -> Path:
    return runs_dir(results_dir) / f"{run_id(config)}.json"


def checkpoint_path(results_dir: str | Path, config: dict[str, Any]) -> Path:
    return Path(results_dir) / "checkpoints" / f"{run_id(config)}.pt"


def atomic_write(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Stream `write(handle)` into a temporary file beside `path`, fsync, then rename: readers see the old file
    or the new one, never half, and no whole copy of it is held in memory (a checkpoint of the paper's net is
    half a gigabyte)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """atomic_write of bytes already in memory."""
    atomic_write(path, lambda handle: handle.write(data))


def write_record(path: Path, record: dict[str, Any]) -> None:
    if record.get("status") not in STATUSES:
        raise ValueError(f"record status must be one of {STATUSES}, not {record.get('status')!r}")
    atomic_write_bytes(path, json.dumps(record, indent=1, sort_keys=True).encode())


def read_record(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


# The one vocabulary of a run's state: what the runner, the grid, the claims and the book all say.
RUN_STATES = {
    "complete": "finished by the current training code (or code declared numerically equivalent)",
    "diverged": "its loss became NaN: a result, not a crash, so it is not trained again",
    "unmeasured": "complete, but the measures of its final weights that a claim needs are not there",
    "running": "being trained now, or stopped (at the deadline, or killed): its last epoch checkpoint resumes it",
    "failed": "it raised, or its record does not parse: trained again (from its checkpoint if any)",
    "stale": "made by other training code (any status): set aside and trained again, never reused",
    "missing": "no record",
}


@dataclass(frozen=True)
class RunState:
    """What the results folder holds of one run: `state` is one of RUN_STATES (run_state never says
    "unmeasured": only what reads the measures, reproduce.verdicts.claims and the grid, can)."""
    state: str
    record: dict[str, Any] | None = None
    reason: str = ""

    @property
    def done(self) -> bool:
        """Nothing left to train: the runner reuses it."""
        return self.state in ("complete", "diverged")


def run_state(results_dir: str | Path, config: dict[str, Any]) -> RunState:
    """The one answer to "what is there of this run?", for the runner (which alone decides reuse),
    the grid's plan, the claims and the book."""
    path = record_path(results_dir, config)
    try:
        record = read_record(path)
    except FileNotFoundError:
        return RunState("missing")
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return RunState("failed", None, f"unreadable record {path.name} ({type(exc).__name__})")
    if not is_current_code((record.get("code") or {}).get("training_sha256")):
        return RunState("stale", record, "made by other training code than the current")
    if record.get("config_hash") != config_hash(config):
        return RunState("stale", record, "its config hash differs from this run's")
    status = record.get("status")
    if status in ("complete", "diverged", "failed"):
        return RunState(status, record, record.get("error") or "")
    return RunState("running", record, "in progress, or interrupted: its last epoch checkpoint resumes it")


def new_record(config: dict[str, Any], device_name: str) -> dict[str, Any]:
    """The fields known before training starts."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id(config),
        "config": config,
        "config_hash": config_hash(config),
        "seed": config["seed"],
        "status": "running",
        "started_at": now_utc(),
        "finished_at": None,
        "device": device_name,
        "code": git_state(),
        "versions": package_versions(),
        "host": {"platform": platform.platform(), "processor": platform.processor(),
                 "cpu_count": os.cpu_count()},
        "epochs": [],
        "iterations": [],
        "totals": {},
        "error": None,
    }


def finish_record(record: dict[str, Any], status: str, error: str | None = None) -> dict[str, Any]:
    record["status"] = status
    record["finished_at"] = now_utc()
    record["error"] = error
    return record


def record_files(results_dir: str | Path) -> Iterator[tuple[Path, dict[str, Any] | None, str | None]]:
    """Every run record file, in name order: (path, record, None), or (path, None, why) where it does not
    parse - the one walk over results/runs, so that an unreadable record is never dropped unnoticed."""
    for path in sorted(runs_dir(results_dir).glob("*.json")):
        try:
            yield path, read_record(path), None
        except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            yield path, None, f"{type(exc).__name__}: {exc}"


def readable_records(results_dir: str | Path) -> list[dict[str, Any]]:
    """The records that parse (the book lists the others: load_records)."""
    return [record for _, record, _ in record_files(results_dir) if record is not None]


GRID_DIR = "grid"  # under the results folder: one record per grid that trained


def write_grid_record(results_dir: str | Path, record: dict[str, Any]) -> Path:
    """Keep what a grid did (reproduce.grids.grid.grid_record) beside the run records, named by its end."""
    stamp = record["finished_at"].replace(":", "").replace("-", "").replace("+0000", "Z")
    path = Path(results_dir) / GRID_DIR / f"{record['preset']}-{stamp}.json"
    atomic_write_bytes(path, json.dumps(record, indent=1, sort_keys=True).encode())
    return path


def load_grid_records(results_dir: str | Path) -> list[dict[str, Any]]:
    """Every grid record that parses, oldest first."""
    found = []
    for path in sorted((Path(results_dir) / GRID_DIR).glob("*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return found


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
