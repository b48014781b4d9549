"""The cluster plan of docs/scale-out.md (issue 32, item 8): its arithmetic on known rates, the loader bench on a
tiny synthetic cache, and the page's table as the committed bench record gives it."""

import json
import shutil
from pathlib import Path

import pytest

from reproduce.grids import scale_model
from reproduce.tools import bench_loader, bench_records

ROOT = Path(__file__).resolve().parents[1]
RATES = scale_model.Rates(loader_cold=1_000.0, loader_warm=5_000.0, decode=250.0, measured_on="a test")


def test_the_plan_is_rates_divided_and_runs_scheduled():
    assert scale_model.cores_per_gpu(RATES, 20_000) == {"cold": 20, "warm": 4}
    assert scale_model.bandwidth_gb_s(20_000) == pytest.approx(20_000 * 196_608 / 1e9)
    assert scale_model.bandwidth_gb_s(20_000, 8) == pytest.approx(8 * scale_model.bandwidth_gb_s(20_000))
    assert scale_model.build_hours(RATES, 64, 16) == pytest.approx(1_331_167 / 64 / (250 * 16) / 3600)
    hours = scale_model.paper_run_hours(20_000)
    assert len(hours) == 13 and max(hours) == pytest.approx(90 * 1_271_167 / 20_000 / 3600)
    assert min(hours) == pytest.approx(8 * 1_271_167 / 20_000 / 3600)  # C12's 8-epoch runs
    # 13 runs, one GPU each: 8 GPUs take two rounds; 64 GPUs no less than the longest run
    assert scale_model.paper_grid_hours(20_000, 64) == pytest.approx(max(hours))
    assert max(hours) < scale_model.paper_grid_hours(20_000, 8) <= 2 * max(hours)


def test_the_loader_bench_writes_its_record_and_the_pages_table(tmp_path):
    doc = tmp_path / "scale-out.md"
    shutil.copyfile(ROOT / "docs" / "scale-out.md", doc)
    record = bench_loader.run_loader_bench(0.02, tmp_path, workers=(1,), doc=doc)
    assert record["per_core"]["cold"] > 0 and record["per_core"]["warm"] > 0 and record["decode_per_core"] > 0
    saved = json.loads(next((tmp_path / "bench").glob("*/loader.json")).read_text())
    assert saved["images_per_s"] == record["images_per_s"]
    assert "\n".join(scale_model.table(bench_loader.rates_of(record))) in doc.read_text()
    assert bench_records.load_bench_records(tmp_path) == ([], [])  # not a training-speed record


def test_the_pages_table_is_the_committed_bench_records():
    found = sorted((ROOT / "results" / "bench").glob("*/loader.json"))
    if not found:
        pytest.skip("no loader bench record committed yet (nox -s bench -- --loader)")
    record = json.loads(found[-1].read_text())
    assert "\n".join(scale_model.table(bench_loader.rates_of(record))) in (ROOT / "docs" / "scale-out.md").read_text()
