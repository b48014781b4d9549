"""scripts/gpu_session.sh, rehearsed on the CPU: what a loan of a GPU does, with a smoke-sized preset, tiny
Fashion-MNIST files, a fake $OUT and a budget of seconds. What matters on the lent machine: no run starts
after the deadline, the archive holds only finished records, the exit code says the budget stopped it,
and a missing data folder stops it at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from datetime import datetime
from pathlib import Path

from formats import write_fashion_mnist

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_session.sh"


def session(workdir: Path, *options: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The script in `workdir` (its project root: results/ and the data folder are there), with this
    interpreter's folder first on PATH as the lent machine's python3."""
    env = {**os.environ, "OUT": str(workdir / "out"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", str(SCRIPT), *options], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_a_rehearsal_packs_finished_records_only_and_starts_nothing_after_the_deadline(tmp_path):
    write_fashion_mnist(tmp_path / ".fashion-mnist-gz", train_n=192, test_n=64)
    # About 30 s of budget for 240 smoke runs that take a minute or two on two cores: some finish, some not.
    done = session(tmp_path, "--seconds", "55", "--reserve", "25", "--preset", "smoke", "--device", "cpu",
                   "--bench", "off", "--data", ".fashion-mnist-gz", "--", "--seeds", "10")
    assert done.returncode == 75, done.stdout + done.stderr  # the budget stopped the grid
    with tarfile.open(tmp_path / "out" / "results.tgz") as archive:
        names = archive.getnames()
        archive.extractall(tmp_path / "unpacked", filter="data")
    unpacked = tmp_path / "unpacked" / "results"
    records = [json.loads(p.read_text()) for p in (unpacked / "runs").glob("*.json")]
    grid = [json.loads(p.read_text()) for p in (unpacked / "grid").glob("*.json")]
    assert records, "a budget of 30 s trains at least one smoke run: the test would prove nothing otherwise"
    assert {r["status"] for r in records} <= {"complete", "diverged"}
    assert len(grid) == 1 and grid[0]["actions"].get("not started", 0) + grid[0]["states"].get("running", 0) > 0
    deadline = datetime.fromisoformat(grid[0]["deadline"])
    assert all(datetime.fromisoformat(r["started_at"]) <= deadline for r in records)
    assert any(name.startswith("results/sessions/") and name.endswith("-cpu.log") for name in names)
    assert not any("checkpoints" in name for name in names)


def test_a_missing_data_folder_stops_it_at_once_in_one_line(tmp_path):
    started = time.perf_counter()
    done = session(tmp_path, "--preset", "smoke", "--device", "cpu", "--data", "nowhere")
    assert time.perf_counter() - started < 5
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "no Fashion-MNIST in nowhere/" in done.stderr
    assert not (tmp_path / "out").exists()
