"""Every run record under a results folder as one pandas DataFrame, a row per run (for the book and `results`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from reproduce.records.results import record_files

if TYPE_CHECKING:
    import pandas


def load_records(results_dir: str | Path = "results") -> "pandas.DataFrame":
    """All run records under results_dir as one DataFrame, a row per run.

    Config fields become columns; the last epoch's metrics become `final_*` columns; the
    full curves stay available in the `epochs` and `iterations` columns. An unreadable
    record is not dropped silently: it appears with status "unreadable" and its path.
    """
    import pandas

    rows = [_record_row(path, record, why) for path, record, why in record_files(results_dir)]
    return pandas.DataFrame(rows)


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
