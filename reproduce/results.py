"""Run records: one self-describing JSON file per run, written atomically.

A record holds everything needed to judge a number without asking anyone: the resolved
config and its hash, the curves, the timings, the status, the code version (git commit and
dirty flag), package versions and the device. Records live in <results_dir>/runs/.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import os
import platform
import re
import sys
import tempfile
import tokenize
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from reproduce.params import hashed_config

if TYPE_CHECKING:
    import pandas

SCHEMA_VERSION = 1
STATUSES = ("running", "complete", "diverged", "failed")
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def config_hash(config: dict[str, Any]) -> str:
    """SHA-256 of the result-deciding parameters (params.hashed_config), in a canonical JSON form."""
    canonical = json.dumps(hashed_config(config), sort_keys=True, separators=(",", ":"))
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
    "unmeasured": only what reads the measures, reproduce.claims and the grid, can)."""
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
    from reproduce.git import git_text

    commit = (git_text(PROJECT_ROOT, "rev-parse", "HEAD") or "").strip() or None
    # Judged on the code alone: results/ changes while runs are written, which says nothing of the code.
    status = git_text(PROJECT_ROOT, "status", "--porcelain", "--untracked-files=no", "--", *SOURCE_PATHS) \
        if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status),
            "source_sha256": source_digest(), "training_sha256": training_digest()}


# The modules whose code decides a run's numbers. A record made with other versions of these is
# stale; editing the report code (claims, figures, book) leaves finished runs valid. Parameter
# values (params.py) are covered by the config hash instead.
SOURCE_PATHS = ("reproduce", "pyproject.toml")  # what decides whether a checkout's code is its commit's
TRAINING_MODULES = ("alexnet", "augment", "batches", "cifar_nets", "data", "distributed", "execution", "layers",
                    "lighting", "models", "train")


def source_digest(names: tuple[str, ...] | None = None) -> str:
    """SHA-256 over the code of the package's modules (or the named ones), comments and docstrings left
    out: identifies the code even without git (a copy of the tree on a GPU machine, an unpacked
    archive), and editing prose never makes a record stale."""
    package = PROJECT_ROOT / "reproduce"
    paths = sorted(package.glob("*.py")) if names is None else [package / f"{n}.py" for n in names]
    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()  # a file's code is worked out once per version of it (run_state asks per run)
        digest.update(path.name.encode())
        digest.update(_file_code(str(path), stat.st_mtime_ns, stat.st_size).encode())
    return digest.hexdigest()


@lru_cache(maxsize=256)
def _file_code(path: str, modified: int, size: int) -> str:
    return code_text(Path(path).read_bytes().decode("utf-8"))


def code_digest(files: list[tuple[str, bytes]]) -> str:
    """The digest of (file name, source) pairs, in order, over their code alone (code_text): what
    source_digest gives for files with these names and contents."""
    digest = hashlib.sha256()
    for name, source in files:
        digest.update(name.encode())
        digest.update(code_text(source.decode("utf-8")).encode())
    return digest.hexdigest()


def code_text(source: str) -> str:
    """A module's source without its comments and docstrings, blank lines and trailing spaces: what a
    change must touch to count as a change of code. Found with ast (docstrings) and tokenize
    (comments) but kept as text, so that the digest is the same under every Python version."""
    lines = source.splitlines()
    try:
        tree = ast.parse(source)
        comments = [token.start for token in tokenize.generate_tokens(io.StringIO(source).readline)
                    if token.type == tokenize.COMMENT]
    except (SyntaxError, tokenize.TokenError):
        return source
    for row, column in comments:
        lines[row - 1] = lines[row - 1][:column]
    for first, last in _docstring_lines(tree):
        lines[first - 1:last] = [""] * (last - first + 1)
    return "\n".join(line.rstrip() for line in lines if line.strip())


def _docstring_lines(tree: ast.AST) -> list[tuple[int, int]]:
    """(first, last) line of each module, class and function docstring."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                found.append((first.lineno, first.end_lineno))
    return found


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

    rows = [_record_row(path, record, why) for path, record, why in record_files(results_dir)]
    return pandas.DataFrame(rows)


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


def _record_row(path: Path, record: dict[str, Any] | None, why: str | None) -> dict[str, Any]:
    if record is None:
        return {"path": str(path), "status": "unreadable", "error": why}
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


GRID_DIR = "grid"  # under the results folder: one record per grid that trained


def write_grid_record(results_dir: str | Path, record: dict[str, Any]) -> Path:
    """Keep what a grid did (reproduce.grid.grid_record) beside the run records, named by its end."""
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
