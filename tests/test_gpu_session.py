"""scripts/gpu_session.sh, rehearsed on the CPU: what a loan of a GPU does, with a smoke-sized preset, tiny
Fashion-MNIST files, a fake $OUT, a budget of seconds and, where it matters, the lent machine's packages
only (tests/lent_machine.py). What matters on the lent machine: nothing it lacks is imported, no run starts
after the deadline, the archive holds only finished records, the exit code says the budget stopped it, a
bench already made by this code is not made again, and a missing data folder stops it at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from datetime import datetime
from pathlib import Path

import pytest
import torch
from formats import write_fashion_mnist
from lent_machine import blocking_site, lacking_modules

from reproduce.records import provenance
from reproduce.tools import bench_records
from reproduce.training.execution import device_kind

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_session.sh"


def session(workdir: Path, *options: str, timeout: float = 300, lent: bool = False) -> subprocess.CompletedProcess:
    """The script in `workdir` (its project root: results/ and the data folder are there), with this
    interpreter's folder first on PATH as the lent machine's python3; with `lent`, only its packages."""
    env = {**os.environ, "OUT": str(workdir / "out"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    if lent:
        env["PYTHONPATH"] = os.pathsep.join([str(blocking_site(workdir / "lent-site")), env.get("PYTHONPATH", "")])
    return subprocess.run(["bash", str(SCRIPT), *options], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=timeout)


def unpacked(workdir: Path) -> tuple[list[str], list[dict], list[dict]]:
    """(names in the archive, its run records, its grid records)."""
    with tarfile.open(workdir / "out" / "results.tgz") as archive:
        names = archive.getnames()
        archive.extractall(workdir / "unpacked", filter="data")
    folder = workdir / "unpacked" / "results"
    return (names, [json.loads(p.read_text()) for p in (folder / "runs").glob("*.json")],
            [json.loads(p.read_text()) for p in (folder / "grid").glob("*.json")])


def test_the_lent_machines_packages_are_blocked_for_real(tmp_path):
    """The imitation can fail: submitit and papermill are installed here, and refused under it."""
    assert {"submitit", "papermill", "jupyter_book", "nbformat"} <= lacking_modules()
    assert not {"torch", "pandas", "scipy", "matplotlib", "tqdm", "PIL", "reproduce"} & lacking_modules()
    env = {**os.environ, "PYTHONPATH": str(blocking_site(tmp_path))}
    done = subprocess.run([sys.executable, "-c", "import submitit"], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "not on the lent GPU machine" in done.stderr


def test_a_rehearsal_with_the_lent_machines_packages_trains_and_packs_finished_records_only(tmp_path):
    write_fashion_mnist(tmp_path / ".fashion-mnist-gz", train_n=1800, test_n=64)
    # About 60-80 s of budget (the plan's dry run takes 5-25 s, by the load) for 124 smoke runs of 1,536 images
    # that take about 3 minutes on two quiet cores: some finish, some not. A budget of 20 s for the default
    # 512 images reached the grid with too little left to train anything on a loaded CI machine.
    done = session(tmp_path, "--seconds", "120", "--reserve", "30", "--preset", "smoke", "--device", "cpu",
                   "--bench", "off", "--data", ".fashion-mnist-gz", "--", "--seeds", "10", "--train-limit", "1536",
                   lent=True)
    said = done.stdout + done.stderr
    assert done.returncode == 75, said  # the budget stopped the grid
    assert "No module named" not in said and "expected yield of" in said.split("== bench")[0]
    names, records, grid = unpacked(tmp_path)
    assert records, "a budget of a minute or more trains at least one smoke run: the test would prove nothing otherwise"
    assert {r["status"] for r in records} <= {"complete", "diverged"}
    assert len(grid) == 1 and grid[0]["actions"].get("not started", 0) + grid[0]["states"].get("running", 0) > 0
    deadline = datetime.fromisoformat(grid[0]["deadline"])
    assert all(datetime.fromisoformat(r["started_at"]) <= deadline for r in records)
    assert any(name.startswith("results/sessions/") and name.endswith("-cpu.log") for name in names)
    assert not any("checkpoints" in name for name in names)


def test_a_bench_this_code_made_on_this_device_kind_is_not_made_again(tmp_path):
    write_fashion_mnist(tmp_path / ".fashion-mnist-gz", train_n=192, test_n=64)
    device = torch.device("cpu")
    probe = {"device": device_kind(device), "network": "paper", "layout": {"key": "all"}, "batch": 128}
    path = bench_records.record_path(str(tmp_path / "results"), probe)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**probe, "ratio": 1.5, "code": {"training_sha256": provenance.training_digest()}}))
    done = session(tmp_path, "--seconds", "150", "--reserve", "30", "--preset", "smoke", "--device", "cpu",
                   "--data", ".fashion-mnist-gz", "--", "--only", "lrn", "--seeds", "1", lent=True)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "measured by this training code before" in said and "measuring the trainer" not in said
    names, records, _ = unpacked(tmp_path)
    assert len(records) == 2 and any(name.endswith("paper-all-b128.json") for name in names)


@pytest.mark.parametrize("options, words", [
    (("--reserve", "10"), "the reserve at least 30"),
    (("--seconds", "soon"), "expected whole seconds"),
    (("--bench", "maybe"), "expected auto, on or off"),
])
def test_bad_options_stop_it_at_once_in_one_line(tmp_path, options, words):
    done = session(tmp_path, "--preset", "smoke", "--device", "cpu", *options)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and words in done.stderr


def test_a_missing_data_folder_stops_it_at_once_in_one_line(tmp_path):
    started = time.perf_counter()
    done = session(tmp_path, "--preset", "smoke", "--device", "cpu", "--data", "nowhere")
    assert time.perf_counter() - started < 5
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "no Fashion-MNIST in nowhere/" in done.stderr
    assert not (tmp_path / "out").exists()
