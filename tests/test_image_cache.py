"""An image folder's sharded cache: shards built one by one, in any order, are the one array a single
process builds, row for row; a killed build leaves the cache incomplete and is rebuilt; cache_state tells
complete, missing and stale shards apart; a whole cache loads from its manifests alone; the grid's
preflight checks it and never builds it. On a folder of a few hundred small random JPEGs."""

from __future__ import annotations

import builtins
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reproduce.datasets import image_folder, image_plan, image_preprocess, image_shards
from reproduce.datasets.batches import iterate_batches
from reproduce.datasets.data import load_dataset
from reproduce.datasets.image_cache_state import cache_state
from reproduce.datasets.image_data import DataUnavailable, per_pixel_mean
from reproduce.datasets.image_shards import build_all, build_shard
from reproduce.datasets.sharded_images import ShardedImages
from reproduce.grids import grid
from reproduce.grids.estimates import Split
from reproduce.spec import params, plan

ROOT = Path(__file__).resolve().parents[1]
TRAIN_PER_CLASS = {"tench": 70, "goldfish": 64, "shark": 66}  # written in no sorted order: labels follow the names
SPLITS = ("train", "heldout", "val")


def write_random_folder(root: Path, per_class: dict[str, int], seed: int = 0) -> None:
    """<root>/train/<class>/*.jpg and a fifth as many under val/: random 32x40 or 40x32 pixels."""
    rng = np.random.default_rng(seed)
    for split, share in (("train", 1.0), ("val", 0.2)):
        for name, count in per_class.items():
            (root / split / name).mkdir(parents=True)
            for index in range(round(count * share)):
                shape = (32, 40, 3) if index % 2 else (40, 32, 3)
                pixels = rng.integers(0, 256, shape, dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{name}_{index:03d}.jpg", quality=90)


def class_sorted(folder: Path) -> list[tuple[Path, int]]:
    classes = sorted(path.name for path in folder.iterdir())
    return [(path, label) for label, name in enumerate(classes) for path in sorted((folder / name).iterdir())]


def expected_splits(root: Path) -> dict[str, list[tuple[Path, int]]]:
    """What the one-array cache always held: the held-out tenth spread evenly over train/'s class-sorted
    list, the rest of it for training, val/ for testing."""
    listed = class_sorted(root / "train")
    held = set(np.linspace(0, len(listed) - 1, len(listed) // 10).round().astype(int).tolist())
    return {"train": [s for i, s in enumerate(listed) if i not in held],
            "heldout": [s for i, s in enumerate(listed) if i in held], "val": class_sorted(root / "val")}


@pytest.fixture(autouse=True)
def one_core(monkeypatch):
    """Preprocess in this process: quick for small images, and a patched preprocess_image is the one called."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    write_random_folder(root, TRAIN_PER_CLASS)
    return root


@pytest.fixture(scope="module")
def expected(folder):
    """Each split's images (preprocess_image on each file, in order) and labels."""
    splits = expected_splits(folder)
    return {split: (torch.from_numpy(np.stack([image_preprocess.preprocess_image(str(path)) for path, _ in samples])),
                    torch.tensor([label for _, label in samples])) for split, samples in splits.items()}


@pytest.fixture
def data_dir(folder, tmp_path):
    return Path(shutil.copytree(folder, tmp_path / "data"))


def loaded_splits(data_dir: Path) -> dict[str, tuple]:
    data = image_folder._load_image_folder(data_dir, 0, 0, verify=False)
    return {"train": (data.train_x, data.train_y), "heldout": (data.val_x, data.val_y),
            "val": (data.test_x, data.test_y), "mean": data.mean, "classes": data.classes}


def every_row(images) -> torch.Tensor:
    return images[torch.arange(len(images))]


def test_shards_built_one_at_a_time_in_any_order_are_the_one_process_array(data_dir, expected):
    build_all(data_dir)  # one process, one shard: the cache as it always was, train-256.npy
    one = loaded_splits(data_dir)
    assert isinstance(one["train"][0], torch.Tensor) and (data_dir / ".reproduce-cache" / "train-256.npy").is_file()
    for index in (2, 0, 1):  # separate calls, as a Slurm array's tasks would make them, in any order
        for split in SPLITS:
            build_shard(data_dir, split, index, 3)
    sharded = loaded_splits(data_dir)
    assert isinstance(sharded["train"][0], ShardedImages)
    assert not (data_dir / ".reproduce-cache" / "train-256.npy").exists()  # the one-shard files are gone
    for split in SPLITS:
        images, labels = expected[split]
        assert torch.equal(every_row(one[split][0]), images) and torch.equal(one[split][1], labels), split
        assert torch.equal(every_row(sharded[split][0]), images) and torch.equal(sharded[split][1], labels), split
    assert torch.equal(sharded["mean"], per_pixel_mean(expected["train"][0]))  # bit for bit
    assert torch.equal(one["mean"], sharded["mean"])
    assert one["classes"] == sharded["classes"] == ["goldfish", "shark", "tench"]


def test_the_loaded_dataset_is_what_it_always_was(data_dir, expected):
    build_all(data_dir, 3)
    data = load_dataset("imagenet-folder", data_dir)
    assert (len(data.train_y), len(data.val_y), len(data.test_y)) == (180, 20, 40)
    assert data.channels == 3 and data.stored_size == 256 and data.num_classes == 3
    assert data.splits["train"] == f"180 images of {data_dir / 'train'} (all but the held-out ones)"
    limited = load_dataset("imagenet-folder", data_dir, train_limit=12, test_limit=5)  # its own cache, built here
    assert torch.equal(limited.train_y, expected["train"][1][np.linspace(0, 179, 12).round().astype(int)])
    assert len(limited.test_y) == 5 and torch.equal(limited.val_y, data.val_y)


def test_sharded_images_index_like_the_one_array():
    whole = torch.arange(15 * 2 * 3 * 3, dtype=torch.int32).reshape(15, 2, 3, 3).to(torch.uint8)
    sharded = ShardedImages([whole[:5], whole[5:5], whole[5:12], whole[12:]])  # an empty shard among them
    assert len(sharded) == 15 and sharded.shape == whole.shape and sharded.dim() == 4
    assert sharded.numel() == whole.numel() and sharded.element_size() == 1 and sharded.dtype == torch.uint8
    assert torch.equal(sharded.to("cpu"), whole)
    for row in (0, 4, 5, 11, 12, 14, -1, -15, np.int64(7), torch.tensor(6)):
        assert torch.equal(sharded[row], whole[row]), row
    for part in (slice(None), slice(2, 4), slice(5, 12), slice(3, 13), slice(0, 15, 4), slice(7, 7),
                 slice(-3, None)):
        assert torch.equal(sharded[part], whole[part]), part
    assert sharded[6:9].data_ptr() == whole[6].data_ptr()  # rows in one shard: its view, not a copy
    order = torch.randperm(15, generator=torch.Generator().manual_seed(0))
    for index in (order, order[:4].numpy(), [3, 3, 14, 0], torch.tensor([], dtype=torch.long), order.view(3, 5)):
        assert torch.equal(sharded[index], whole[torch.as_tensor(index, dtype=torch.long)])
    for outside in (15, -16, torch.tensor([0, 15])):
        with pytest.raises(IndexError):
            sharded[outside]


def test_batches_of_sharded_images_are_the_batches_of_the_one_array():
    whole = torch.randint(0, 256, (11, 3, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    sharded, labels = ShardedImages([whole[:4], whole[4:9], whole[9:]]), torch.arange(11)
    order = torch.randperm(11, generator=torch.Generator().manual_seed(2))
    for part in ((0, 1), (1, 2)):
        batches = zip(iterate_batches(whole, labels, 4, device="cpu", order=order, part=part),
                      iterate_batches(sharded, labels, 4, device="cpu", order=order, part=part), strict=True)
        assert all(torch.equal(a, b) and torch.equal(ay, by) for (a, ay), (b, by) in batches)


def fail_after(calls: int):
    """preprocess_image that raises on its call number `calls`: a build stopped midway."""
    real, count = image_preprocess.preprocess_image, [0]

    def preprocess(path, size=256):
        count[0] += 1
        if count[0] == calls:
            raise KeyboardInterrupt("stopped midway")
        return real(path, size)
    return preprocess


def cache_files(data_dir: Path) -> set[str]:
    return {path.name for path in (data_dir / ".reproduce-cache").iterdir() if not path.name.endswith(".lock")}


def test_a_shard_build_stopped_midway_leaves_the_cache_incomplete_and_is_rebuilt(data_dir, expected, monkeypatch):
    for index in range(3):
        build_shard(data_dir, "val", index, 3)
    before = cache_files(data_dir)
    with monkeypatch.context() as patch:
        patch.setattr(image_preprocess, "preprocess_image", fail_after(30))
        with pytest.raises(KeyboardInterrupt):
            build_shard(data_dir, "train", 1, 3)
    assert cache_files(data_dir) - before == set()  # no temporary file left, no shard file of train
    state = cache_state(data_dir).splits["train"]
    assert (state.complete, state.missing, state.stale) == ((), (0, 1, 2), ())
    # What a kill leaves: temporaries of a dead process and a renamed .npy whose manifest never got written.
    name = "train-256-00001-of-00003"
    cache = data_dir / ".reproduce-cache"
    for leftover in (f"{name}.npy.partial-999999", f"{name}.sum.npy.partial-999999", f"{name}.npy"):
        (cache / leftover).write_bytes(b"half")
    assert cache_state(data_dir).splits["train"].missing == (0, 1, 2)
    for index in range(3):
        build_shard(data_dir, "train", index, 3)
    assert not [path for path in cache.iterdir() if ".partial-" in path.name]
    assert cache_state(data_dir).splits["train"].whole
    assert torch.equal(every_row(loaded_splits(data_dir)["train"][0]), expected["train"][0])


def test_cache_state_says_which_shards_are_missing_complete_or_stale(data_dir):
    state = cache_state(data_dir)
    assert not state.whole and all(split.shards == 0 for split in state.splits.values())
    assert f"python -m reproduce cache --data-dir {data_dir} --shard I/N" in state.message
    assert "--executor submitit" in state.message and "\n" not in state.message
    build_shard(data_dir, "train", 0, 3)
    state = cache_state(data_dir)
    assert (state.splits["train"].complete, state.splits["train"].missing) == ((0,), (1, 2))
    assert "--shard I/3` for I = 0..2" in state.message
    build_all(data_dir)
    assert cache_state(data_dir).whole and cache_state(data_dir, verify=True).whole
    assert cache_state(data_dir).rows() == {"train": 180, "heldout": 20, "val": 40}

    # A file that changes size: only a verifying check sees it, and says the split is stale.
    changed = data_dir / "val" / "shark" / "shark_003.jpg"
    changed.write_bytes(changed.read_bytes() + b"\0")
    assert cache_state(data_dir).whole
    verified = cache_state(data_dir, verify=True)  # val is in one shard: build_shard re-cut train's plan only
    assert verified.splits["val"].stale == (0,) and verified.splits["train"].whole and not verified.whole
    with pytest.raises(DataUnavailable, match="shark_003.jpg is .* bytes"):  # a shard built from the old plan
        image_shards.build_planned_shard(data_dir, _stale_val_plan(data_dir), 0)

    # A file added: a new listing holds out other images, so train's and heldout's shards are stale too.
    Image.new("RGB", (40, 32)).save(data_dir / "train" / "goldfish" / "goldfish_new.jpg")
    assert not cache_state(data_dir, verify=True).splits["train"].whole
    image_plan.plan_cache(data_dir)  # planned again: the manifests alone now say which shards are stale
    state = cache_state(data_dir)
    assert state.splits["train"].stale == (0, 1, 2) and state.splits["heldout"].stale == (0,)
    build_all(data_dir)
    assert cache_state(data_dir, verify=True).whole


def _stale_val_plan(data_dir: Path) -> dict:
    plan_file = image_plan.plan_path(data_dir / ".reproduce-cache", "val", 0)
    stale = image_plan.read_json(plan_file)
    (data_dir / ".reproduce-cache" / f"{stale['shards'][0]['name']}.shard.json").unlink()
    return stale


def test_a_new_listing_keeps_the_shards_of_splits_it_does_not_change(data_dir):
    build_all(data_dir, 2)
    Image.new("RGB", (40, 32)).save(data_dir / "val" / "tench" / "tench_new.jpg")
    image_plan.plan_cache(data_dir)
    state = cache_state(data_dir)
    assert state.splits["train"].whole and state.splits["heldout"].whole and state.splits["val"].stale == (0, 1)


class FilesystemCalls:
    """Every os.stat, os.scandir, os.listdir and open while installed, by path."""

    def __init__(self, monkeypatch):
        self.paths = []
        for module, name in ((os, "stat"), (os, "scandir"), (os, "listdir"), (builtins, "open"), (io, "open")):
            monkeypatch.setattr(module, name, self._recording(getattr(module, name)))

    def _recording(self, real):
        def call(path=".", *args, **kwargs):
            self.paths.append(os.fspath(path) if isinstance(path, (str, os.PathLike)) else str(path))
            return real(path, *args, **kwargs)
        return call

    def under(self, folder: Path) -> list[str]:
        return [path for path in self.paths if path.startswith(str(folder))]


def must_not_be_called(*args, **kwargs):
    raise AssertionError("a whole cache must load without listing the folder or decoding an image")


def calls_to_load(data_dir: Path, monkeypatch) -> FilesystemCalls:
    with monkeypatch.context() as patch:
        for module, name in ((image_plan, "make_dataset"), (image_plan, "find_classes"),
                             (image_preprocess, "preprocess_image")):
            patch.setattr(module, name, must_not_be_called)
        patch.setattr(image_folder, "VERIFY_UP_TO", 0)  # load as ImageNet's 1.33 million images would
        calls = FilesystemCalls(patch)
        load_dataset("imagenet-folder", data_dir)
    return calls


def test_a_whole_cache_loads_from_its_manifests_without_looking_at_the_folder(tmp_path, monkeypatch):
    small, large = tmp_path / "small", tmp_path / "large"
    write_random_folder(small, {"a": 30, "b": 30})
    write_random_folder(large, {"a": 90, "b": 60})
    for data_dir in (small, large):
        build_all(data_dir, 2)
    small_calls, large_calls = calls_to_load(small, monkeypatch), calls_to_load(large, monkeypatch)
    for data_dir, calls in ((small, small_calls), (large, large_calls)):
        assert not calls.under(data_dir / "train") and not calls.under(data_dir / "val")
    assert len(small_calls.paths) == len(large_calls.paths)  # as many for 150 images as for 60: none per image
    assert len(small_calls.under(small)) <= 60


def preflight_runs(data_dir: Path, results_dir: Path) -> list[plan.PlannedRun]:
    config = params.resolve({"dataset": "imagenet-folder", "data_dir": str(data_dir), "results_dir": str(results_dir)})
    return [plan.PlannedRun(config, "alexnet", (), (), False, (0, 0, 0))]


def test_the_grid_preflight_checks_the_cache_and_never_builds_it(data_dir, tmp_path):
    with pytest.raises(DataUnavailable, match="not found. Put images in"):
        grid.preflight(preflight_runs(tmp_path / "nowhere", tmp_path / "results"))
    runs = preflight_runs(data_dir, tmp_path / "results")
    with pytest.raises(DataUnavailable, match=r"python -m reproduce cache --data-dir .* --shard I/N"):
        grid.preflight(runs)
    assert not (data_dir / ".reproduce-cache").exists() or not list((data_dir / ".reproduce-cache").glob("*.npy"))
    build_all(data_dir, 2)
    assert list(grid.preflight(runs).values()) == [Split(180, 20, 40)]


def _cache_command(data_dir, *more, env=None):
    return subprocess.run([sys.executable, "-m", "reproduce", "cache", "--data-dir", str(data_dir), *more],
                          capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)


def test_the_cache_command_builds_shard_by_shard_and_says_when_the_cache_is_whole(tmp_path):
    write_random_folder(tmp_path, {"a": 12, "b": 9})
    first = _cache_command(tmp_path, "--shard", "0/2")
    assert first.returncode == 1 and "is not whole" in first.stdout and "--shard I/2" in first.stdout
    second = _cache_command(tmp_path, "--shard", "1/2")
    assert second.returncode == 0 and "is whole" in second.stdout, second.stdout + second.stderr
    checked = _cache_command(tmp_path, "--verify")
    assert checked.returncode == 0 and "2 of 2 shards complete" in checked.stdout
    bad = _cache_command(tmp_path, "--shard", "2/2")
    assert bad.returncode == 2 and "shard: '2/2' is not allowed" in bad.stderr


def test_the_cache_builds_as_a_slurm_job_array_one_task_a_shard(tmp_path):
    """`--executor submitit --shards 3` on the one-node Slurm cluster the tests start (test_slurm's): one array
    of 3 tasks, and the cache they leave is the one a single process builds."""
    import slurm_cluster

    reason = slurm_cluster.why_not()
    if reason:
        pytest.skip(reason)
    write_random_folder(tmp_path / "data", {"a": 12, "b": 9})
    cluster = slurm_cluster.Cluster(tmp_path / "slurm").start()
    try:
        env = {**os.environ, "SLURM_CONF": str(cluster.conf)}
        done = _cache_command(tmp_path / "data", "--executor", "submitit", "--shards", "3", "--slurm-time", "5",
                              "--results-dir", str(tmp_path / "results"), env=env)
    finally:
        cluster.cancel_all()
        cluster.stop()
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "submitit (slurm): 3 cache tasks, job array" in done.stdout and "3 of 3 shards complete" in done.stdout
    alone = tmp_path / "alone"
    shutil.copytree(tmp_path / "data", alone, ignore=shutil.ignore_patterns(".reproduce-cache"))
    assert _cache_command(alone, "--shards", "1").returncode == 0
    arrayed, single = (load_dataset("imagenet-folder", str(d)) for d in (tmp_path / "data", alone))
    assert torch.equal(arrayed.train_x[: len(arrayed.train_y)], single.train_x[: len(single.train_y)])
    assert torch.equal(arrayed.train_y, single.train_y) and torch.equal(arrayed.mean, single.mean)


def test_the_paper_grids_dry_run_shows_the_caches_state_one_gpu_a_run_and_the_time_left(tmp_path, capsys):
    """Issue 32: `grid --preset paper --data-dir D --dry-run` on a machine without a GPU plans for one, and says
    whether the cache is whole (how to build it when not), that each run takes one GPU, and how long it takes."""
    from reproduce import cli

    write_random_folder(tmp_path, {"a": 12, "b": 9})

    def dry_run():
        status = cli.main(["grid", "--preset", "paper", "--data-dir", str(tmp_path), "--dry-run", "--device", "cuda",
                           "--results-dir", str(tmp_path / "r")])
        assert status == 0
        return capsys.readouterr().out

    before = dry_run()
    assert "data: imagenet-folder: the cache under" in before and "is not whole" in before
    assert "python -m reproduce cache --data-dir" in before
    assert "placement: one GPU a run" in before and "time left: about" in before
    build_all(tmp_path)
    assert "is whole (train-256 1 of 1 shards complete" in dry_run()


def test_two_runs_staging_at_once_make_one_copy_and_read_the_same_images(folder, expected, tmp_path, monkeypatch):
    """stage_dir: the shards are copied to the node-local folder once, however many runs start together (each
    shard under a lock there); every run then reads the copy, which holds the cache's bytes."""
    import threading
    import time as clock

    from reproduce.datasets import staging

    build_all(folder, 2)
    real_copy, copies = shutil.copyfile, []

    def slow_copy(source, target):
        copies.append(Path(source).name)
        clock.sleep(0.05)  # long enough for the other run to reach the lock
        return real_copy(source, target)

    monkeypatch.setattr(staging.shutil, "copyfile", slow_copy)
    loaded = [None, None]

    def run(slot):
        loaded[slot] = load_dataset("imagenet-folder", str(folder), stage_dir=str(tmp_path / "local"))

    threads = [threading.Thread(target=run, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(copies) == sorted(set(copies)) and len(copies) == 3 * 2 * 3  # 3 splits x 2 shards x 3 files
    for data in loaded:
        assert torch.equal(data.train_x[:], expected["train"][0]) and torch.equal(data.train_y, expected["train"][1])
    staged = next((tmp_path / "local").iterdir())
    assert {p.name for p in staged.glob("*.npy")} <= {p.name for p in (folder / ".reproduce-cache").glob("*.npy")}
    again = load_dataset("imagenet-folder", str(folder), stage_dir=str(tmp_path / "local"))
    assert len(copies) == 18 and torch.equal(again.test_x[:], expected["val"][0])  # test_x: val/


def test_a_jobs_memory_is_asked_for_the_cache_it_reads(folder):
    """slurm_mem auto: a run of an image folder asks Slurm for its cache's size plus 16 GB (the page cache holds
    what each epoch reads, within the job's cgroup); Fashion-MNIST asks for Slurm's default."""
    from reproduce.grids import slurm_options

    build_all(folder)
    config = params.resolve({"dataset": "imagenet-folder", "data_dir": str(folder)})
    options = grid.parse_options({"executor": "submitit"})
    chosen = slurm_options.job_options(options, config, "local", 0)
    rows = sum(cache_state(folder).rows().values())
    assert chosen["slurm_mem"] == -(-rows * 196_608 // 10 ** 9) + 16 == 17
    assert slurm_options.job_parameters(chosen)["mem_gb"] == 17
    small = slurm_options.job_options(options, params.resolve({}), "local", 0)
    assert small["slurm_mem"] == 0 and "mem_gb" not in slurm_options.job_parameters(small)
    assert slurm_options.job_options({**options, "slurm_mem": 64}, config, "local", 0)["slurm_mem"] == 64
