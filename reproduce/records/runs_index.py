"""results/runs/index.csv: one row per run record, a table a person can grep.

Which run is which, without opening a JSON file: its id, the preset and network it belongs to, the
settings that tell it apart from that network's baseline, the claims it serves, its state, and the
commit and device that made it. Written by every grid that trained something and by the book; never
edited by hand (a record is the truth, the index a view of it).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from reproduce.records import results
from reproduce.spec import params, plan

FILE_NAME = "index.csv"
COLUMNS = ("run_id", "preset", "network", "settings", "seed", "claims", "state", "test_top1_error", "commit",
           "device", "finished_at")


def index_path(results_dir: str | Path) -> Path:
    return results.runs_dir(results_dir) / FILE_NAME


def write(results_dir: str | Path) -> Path:
    """Write the index of every record under results_dir/runs (atomically) and return its path."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows(results_dir))
    path = index_path(results_dir)
    results.atomic_write_bytes(path, out.getvalue().encode())
    return path


def rows(results_dir: str | Path) -> list[dict[str, Any]]:
    records = results.readable_records(results_dir)
    served = _claims_served(records)
    return [_row(results_dir, record, served) for record in records]


def _row(results_dir: str | Path, record: dict[str, Any], served: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    config = {**params.defaults(), **record.get("config", {})}
    home = network_of(config)
    baseline = params.resolve({}, preset=home[0], network=home[1]) if home else None
    last = (record.get("epochs") or [{}])[-1]
    return {"run_id": record.get("run_id"), "preset": home[0] if home else "", "network": home[1] if home else "",
            "settings": plan.describe_run(config, baseline, seed=False), "seed": config.get("seed"),
            "claims": " ".join(served.get(record.get("run_id"), ())),
            "state": results.run_state(results_dir, config).state, "test_top1_error": last.get("test_top1_error", ""),
            "commit": ((record.get("code") or {}).get("commit") or "")[:12], "device": record.get("device", ""),
            "finished_at": record.get("finished_at") or ""}


def network_of(config: dict[str, Any]) -> tuple[str, str] | None:
    """(preset, network) whose baseline this config varies, in what some claim compares and its seed only."""
    return _homes().get(_key(config))


def _homes() -> dict[str, tuple[str, str]]:
    return {_key(params.resolve({}, preset=preset, network=network)): (preset, network)
            for preset, declared in params.PRESETS.items() for network in declared.networks}


def _key(config: dict[str, Any]) -> str:
    varied = plan.compared_anywhere() | {"seed"}
    return repr(sorted((k, v) for k, v in params.result_config(config).items() if k not in varied))


def _claims_served(records: list[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    """run id -> the claims that use it, at each preset, for the seeds the records reach."""
    seeds: dict[str, int] = {}
    for record in records:
        home = network_of({**params.defaults(), **record.get("config", {})})
        if home:
            seeds[home[0]] = max(seeds.get(home[0], 0), int(record["config"].get("seed", 0)) + 1)
    served: dict[str, tuple[str, ...]] = {}
    for preset, count in seeds.items():
        for run in plan.grid_plan(preset, count):
            served[run.run_id] = run.claims
    return served
