"""Run records: one self-describing JSON file per run, written atomically.

A record holds everything needed to judge a number without asking anyone: the resolved
config and its hash, the curves, the timings, the status, the code version (git commit and
dirty flag), package versions and the device. Records live in <results_dir>/runs/.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from reproduce.params import result_config

SCHEMA_VERSION = 1
STATUSES = ("running", "complete", "diverged", "failed")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def config_hash(config: dict[str, Any]) -> str:
    """SHA-256 of the result-deciding parameters, in a canonical JSON form."""
    canonical = json.dumps(result_config(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def run_id(config: dict[str, Any]) -> str:
    """A readable, filesystem-safe id: model, dataset, seed and the config hash."""
    readable = f"{config['model']}_{config['dataset']}_s{config['seed']}"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", readable)
    return f"{safe}_{config_hash(config)[:12]}"


def runs_dir(results_dir: str | Path) -> Path:
    return Path(results_dir) / "runs"


def record_path(results_dir: str | Path, config: dict[str, Any]) -> Path:
    return runs_dir(results_dir) / f"{run_id(config)}.json"


def checkpoint_path(results_dir: str | Path, config: dict[str, Any]) -> Path:
    return Path(results_dir) / "checkpoints" / f"{run_id(config)}.pt"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, then rename: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_record(path: Path, record: dict[str, Any]) -> None:
    if record.get("status") not in STATUSES:
        raise ValueError(f"record status must be one of {STATUSES}, not {record.get('status')!r}")
    atomic_write_bytes(path, json.dumps(record, indent=1, sort_keys=True).encode())


def read_record(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


RUN_STATES = ("complete", "stale", "running", "failed", "diverged", "missing")


@dataclass(frozen=True)
class RunState:
    """What the results folder holds of one run. `state` is one of RUN_STATES:

    - complete: finished, made by the current training code (or code declared numerically equivalent)
    - stale: made by other training code (any status): set aside and trained again, never reused
    - running: being trained now, or interrupted: its last epoch checkpoint resumes it
    - failed: it raised, or its record does not parse: trained again (from its checkpoint if any)
    - diverged: its loss became NaN: a result, not a crash, so it is not trained again
    - missing: no record
    """
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


def git_state() -> dict[str, Any]:
    """Commit and dirty flag of the checkout (None when not a git checkout), and a source digest."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                 timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    # Judged on the code alone: results/ changes while runs are written, which says nothing of the code.
    status = git("status", "--porcelain", "--untracked-files=no", "--", *SOURCE_PATHS) if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status),
            "source_sha256": source_digest(), "training_sha256": training_digest()}


# The modules whose code decides a run's numbers. A record made with other versions of these is
# stale; editing the report code (claims, figures, book) leaves finished runs valid. Parameter
# values (params.py) are covered by the config hash instead.
SOURCE_PATHS = ("reproduce", "pyproject.toml")  # what decides whether a checkout's code is its commit's
TRAINING_MODULES = ("alexnet", "augment", "batches", "cifar_nets", "data", "distributed", "execution", "layers",
                    "lighting", "models", "train")


def source_digest(names: tuple[str, ...] | None = None) -> str:
    """SHA-256 over the package's source files (or the named modules): identifies the code even
    without git (a copy of the tree on a GPU machine, an unpacked archive)."""
    package = PROJECT_ROOT / "reproduce"
    paths = sorted(package.glob("*.py")) if names is None else [package / f"{n}.py" for n in names]
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def training_digest() -> str:
    return source_digest(TRAINING_MODULES)


def is_current_code(training_sha256: str | None) -> bool:
    """Made by the current training code, or by earlier code declared numerically equivalent to it
    (reproduce/equivalent_code.toml, each declaration with its evidence)."""
    from reproduce import equivalence

    return training_sha256 in equivalence.accepted_digests(training_digest())


def package_versions() -> dict[str, str]:
    import numpy
    import torch
    import torchvision

    versions = {"python": sys.version.split()[0], "torch": torch.__version__,
                "torchvision": torchvision.__version__, "numpy": numpy.__version__}
    versions["cuda"] = torch.version.cuda or "none"
    if torch.backends.cudnn.is_available():
        versions["cudnn"] = str(torch.backends.cudnn.version())
    return versions


def load_records(results_dir: str | Path = "results") -> "pandas.DataFrame":
    """All run records under results_dir as one DataFrame, a row per run.

    Config fields become columns; the last epoch's metrics become `final_*` columns; the
    full curves stay available in the `epochs` and `iterations` columns. An unreadable
    record is not dropped silently: it appears with status "unreadable" and its path.
    """
    import pandas

    rows = [_record_row(path) for path in sorted(runs_dir(results_dir).glob("*.json"))]
    return pandas.DataFrame(rows)


def _record_row(path: Path) -> dict[str, Any]:
    try:
        record = read_record(path)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        return {"path": str(path), "status": "unreadable", "error": f"{type(exc).__name__}: {exc}"}
    row = {"path": str(path), **record.get("config", {})}
    row.update({key: record.get(key) for key in
                ("run_id", "config_hash", "status", "device", "started_at", "finished_at", "error", "versions",
                 "epochs", "iterations")})
    row.update({f"final_{k}": v for k, v in (record.get("epochs") or [{}])[-1].items()})
    row.update({f"total_{k}": v for k, v in (record.get("totals") or {}).items()})
    row["git_commit"] = (record.get("code") or {}).get("commit")
    row["git_dirty"] = (record.get("code") or {}).get("dirty")
    row["training_sha256"] = (record.get("code") or {}).get("training_sha256")
    return row


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
