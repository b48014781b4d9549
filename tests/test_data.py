"""Datasets, augmentation and batching, on small files written here in the real formats."""

from __future__ import annotations

import gzip
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from formats import idx_bytes, md5, trust_generated_cifar10, write_cifar10, write_fashion_mnist
from PIL import Image
from torchvision.datasets import CIFAR10

from reproduce.datasets import data, image_data, image_folder
from reproduce.datasets.augment import BatchTransform, canvas_size, crop_per_image
from reproduce.datasets.batches import iterate_batches, to_device_if_fits
from reproduce.datasets.data import load_dataset
from reproduce.datasets.image_data import DataCorrupt, DataUnavailable

REAL_FASHION_MNIST = Path(data.FASHION_MNIST_SYSTEM_DIR)


def test_fashion_mnist_from_system_dir(tmp_path, system_fashion):
    _, arrays = system_fashion
    loaded = load_dataset("fashion-mnist", tmp_path / "data")
    train_images = arrays["train-images-idx3-ubyte"][:18]  # the last 2 (a tenth) are the validation split
    assert loaded.train_x.dtype == torch.uint8 and loaded.train_x.shape == (18, 1, 28, 28)
    assert loaded.test_x.shape == (10, 1, 28, 28) and loaded.train_y.dtype == torch.int64
    assert np.array_equal(loaded.train_x[:, 0].numpy(), train_images)
    assert loaded.train_y.tolist() == arrays["train-labels-idx1-ubyte"][:18].tolist()
    assert loaded.test_y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    expected_mean = train_images.astype(np.float64).mean(0)[None]
    assert loaded.mean.dtype == torch.float32
    assert np.allclose(loaded.mean.numpy(), expected_mean, atol=1e-4)
    assert (loaded.num_classes, loaded.channels, loaded.stored_size) == (10, 1, 28)
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    assert (raw / "train-images-idx3-ubyte").read_bytes() == idx_bytes(arrays["train-images-idx3-ubyte"])
    assert not list(raw.glob("*.partial"))


def test_fashion_mnist_limits_take_first_examples_and_mean_of_those(tmp_path, system_fashion):
    _, arrays = system_fashion
    loaded = load_dataset("fashion-mnist", tmp_path, train_limit=5, test_limit=3)
    assert len(loaded.train_x) == 5 and len(loaded.test_y) == 3
    first_five = arrays["train-images-idx3-ubyte"][:5]
    assert np.array_equal(loaded.train_x[:, 0].numpy(), first_five)
    assert np.allclose(loaded.mean[0].numpy(), first_five.mean(0), atol=1e-4)


def test_the_validation_split_is_held_out_of_the_training_images_and_the_record_says_which(tmp_path,
                                                                                        system_fashion):
    _, arrays = system_fashion
    images = arrays["train-images-idx3-ubyte"]
    loaded = load_dataset("fashion-mnist", tmp_path, train_limit=5, test_limit=3)
    assert np.array_equal(loaded.val_x[:, 0].numpy(), images[18:])  # held out before any limit applies
    assert loaded.val_y.tolist() == arrays["train-labels-idx1-ubyte"][18:].tolist()
    assert np.array_equal(loaded.train_x[:, 0].numpy(), images[:5])
    assert loaded.splits == {"train": "fashion-mnist training images 0-4",
                             "validation": "fashion-mnist training images 18-19 (held out; the lr schedule watches "
                                           "them)", "test": "fashion-mnist test images 0-2 (reported only)"}
    assert image_data.held_out_count("fashion-mnist", 60_000) == 5_000  # the real set: its last 5,000


def test_fashion_mnist_prefers_files_already_in_data_dir(tmp_path, monkeypatch):
    arrays = write_fashion_mnist(tmp_path / "gz", train_n=4, test_n=2)
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name, array in arrays.items():
        (raw / name).write_bytes(idx_bytes(array))
    monkeypatch.setenv(data.FASHION_MNIST_DIR_ENV, str(tmp_path / "nowhere"))
    loaded = load_dataset("fashion-mnist", tmp_path / "data")
    assert (len(loaded.train_x), len(loaded.val_x), len(loaded.test_x)) == (3, 1, 2)


def test_fashion_mnist_missing_and_offline_names_the_remedies(tmp_path, monkeypatch):
    monkeypatch.setenv(data.FASHION_MNIST_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(DataUnavailable) as caught:
        load_dataset("fashion-mnist", tmp_path / "data")
    message = str(caught.value)
    assert "dataset-fashion-mnist" in message and "internet" in message
    assert str(tmp_path / "data") in message


def test_fashion_mnist_truncated_gz_names_the_file(tmp_path, system_fashion):
    folder, _ = system_fashion
    broken = folder / "train-images-idx3-ubyte.gz"
    broken.write_bytes(broken.read_bytes()[:200])
    with pytest.raises(DataCorrupt, match=str(broken)):
        load_dataset("fashion-mnist", tmp_path / "data")
    # Nothing half-written is left to be mistaken for a complete file next time.
    assert not (tmp_path / "data" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").exists()


def test_fashion_mnist_bad_idx_names_the_file(tmp_path, system_fashion):
    folder, arrays = system_fashion
    labels = idx_bytes(arrays["t10k-labels-idx1-ubyte"])[:-4]  # 4 labels short of its header
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write(labels)
    with pytest.raises(DataCorrupt, match="t10k-labels-idx1-ubyte"):
        load_dataset("fashion-mnist", tmp_path / "data")


@pytest.mark.skipif(not REAL_FASHION_MNIST.is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist(tmp_path, monkeypatch):
    monkeypatch.delenv(data.FASHION_MNIST_DIR_ENV, raising=False)
    loaded = load_dataset("fashion-mnist", tmp_path)
    assert loaded.train_x.shape == (55000, 1, 28, 28) and loaded.test_x.shape == (10000, 1, 28, 28)
    assert loaded.val_x.shape == (5000, 1, 28, 28)
    assert loaded.num_classes == 10 and loaded.mean.shape == (1, 28, 28)
    # The release is balanced; a damaged or foreign file would hardly be.
    assert torch.bincount(torch.cat([loaded.train_y, loaded.val_y])).tolist() == [6000] * 10
    assert min(torch.bincount(loaded.val_y).tolist()) > 400  # the last 5,000 hold every class
    assert torch.bincount(loaded.test_y).tolist() == [1000] * 10


def test_unknown_dataset_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="fashion-mnist"):
        load_dataset("mnist", tmp_path)


# ---------------------------------------------------------------- CIFAR-10


def test_cifar10_from_batches(tmp_path, monkeypatch):
    batches = write_cifar10(tmp_path)
    trust_generated_cifar10(monkeypatch, tmp_path / CIFAR10.base_folder)
    loaded = load_dataset("cifar10", tmp_path)
    train_rows = np.concatenate([batches[f"data_batch_{i}"]["data"] for i in range(1, 6)])
    # 20 training images: the last 2 (a tenth) are the validation split
    assert loaded.train_x.shape == (18, 3, 32, 32) and loaded.train_x.dtype == torch.uint8
    assert loaded.train_x.is_contiguous() and loaded.test_x.shape == (3, 3, 32, 32)
    assert np.array_equal(loaded.train_x.numpy(), train_rows.reshape(20, 3, 32, 32)[:18])
    assert np.array_equal(loaded.val_x.numpy(), train_rows.reshape(20, 3, 32, 32)[18:])
    assert loaded.train_y.tolist() == sum((batches[f"data_batch_{i}"]["labels"] for i in range(1, 6)), [])[:18]
    assert loaded.test_y.dtype == torch.int64 and loaded.test_y.tolist() == batches["test_batch"]["labels"]
    assert np.allclose(loaded.mean.numpy(), train_rows.reshape(20, 3, 32, 32)[:18].mean(0), atol=1e-4)
    assert loaded.classes[0] == "airplane" and loaded.num_classes == 10


def test_cifar10_extracts_a_present_tarball_without_network(tmp_path, monkeypatch):
    staging = tmp_path / "staging"
    write_cifar10(staging)
    trust_generated_cifar10(monkeypatch, staging / CIFAR10.base_folder)
    tarball = tmp_path / "data" / CIFAR10.filename
    tarball.parent.mkdir()
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(staging / CIFAR10.base_folder, arcname=CIFAR10.base_folder)
    monkeypatch.setattr(CIFAR10, "tgz_md5", md5(tarball))
    loaded = load_dataset("cifar10", tmp_path / "data")
    assert len(loaded.train_x) + len(loaded.val_x) == 20


def test_cifar10_failing_md5_and_offline_names_the_remedies(tmp_path):
    write_cifar10(tmp_path)  # the real release's MD5s are kept: these files fail the check
    with pytest.raises(DataUnavailable, match="cifar10") as caught:
        load_dataset("cifar10", tmp_path)
    assert "MD5" in str(caught.value) and CIFAR10.filename in str(caught.value)


# ---------------------------------------------------------------- ImageNet-style folder

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def striped_image(width: int, height: int, edge: int) -> Image.Image:
    """Green with `edge` red columns on the left and blue on the right: after shorter
    side -> 256 and the centre crop, only green may remain."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:] = GREEN
    pixels[:, :edge], pixels[:, width - edge :] = RED, BLUE
    return Image.fromarray(pixels)


def write_image_folder(root: Path) -> None:
    for split, cls in [("train", "cat"), ("train", "dog"), ("val", "cat"), ("val", "dog")]:
        (root / split / cls).mkdir(parents=True)
    striped_image(100, 50, edge=20).save(root / "train" / "cat" / "a_wide.png")
    striped_image(50, 100, edge=0).rotate(90, expand=True).save(root / "train" / "cat" / "b_tall.png")
    Image.new("RGB", (30, 30), (10, 20, 30)).save(root / "train" / "dog" / "a_small.png")
    Image.new("L", (300, 400), 128).save(root / "train" / "dog" / "b_gray.jpg", quality=95)
    Image.new("RGB", (64, 48), BLUE).save(root / "val" / "cat" / "x.jpg")
    Image.new("RGB", (48, 64), RED).save(root / "val" / "dog" / "y.png")
    (root / "train" / "dog" / "notes.txt").write_text("not an image")


def test_image_folder_preprocessing(tmp_path):
    write_image_folder(tmp_path)
    loaded = load_dataset("imagenet-folder", tmp_path)
    assert loaded.classes == ["cat", "dog"]
    # Of the 4 training images, one (the first of the class-sorted list) is held out for validation.
    assert loaded.train_x.shape == (3, 3, 256, 256) and loaded.train_x.dtype == torch.uint8
    assert loaded.val_y.tolist() == [0] and loaded.train_y.tolist() == [0, 1, 1] and loaded.test_y.tolist() == [0, 1]
    wide = loaded.val_x[0].permute(1, 2, 0).reshape(-1, 3)
    assert (wide == torch.tensor(GREEN, dtype=torch.uint8)).all()  # the crop kept the centre only
    assert (loaded.train_x[1].float().mean((1, 2)) - torch.tensor([10.0, 20.0, 30.0])).abs().max() < 1
    assert (loaded.train_x[2].float() - 128).abs().max() <= 2  # grayscale JPEG -> 3 equal channels
    assert np.allclose(loaded.mean.numpy(), loaded.train_x.double().mean(0).numpy(), atol=1e-3)
    assert loaded.stored_size == 256 and loaded.channels == 3


def test_shorter_side_size():
    assert image_folder.shorter_side_size(100, 50) == (512, 256)
    assert image_folder.shorter_side_size(375, 500) == (256, 341)


def must_not_decode(path, size=256):
    raise AssertionError("the cache should have been used")


def test_image_folder_cache_is_reused_and_refreshed(tmp_path, monkeypatch):
    write_image_folder(tmp_path)
    first = load_dataset("imagenet-folder", tmp_path)
    cache = tmp_path / image_folder.CACHE_DIR_NAME / "train-256.npy"
    stamp = cache.stat().st_mtime_ns
    with monkeypatch.context() as patch:
        patch.setattr(image_folder, "preprocess_image", must_not_decode)
        second = load_dataset("imagenet-folder", tmp_path)
    assert torch.equal(first.train_x, second.train_x) and torch.equal(first.mean, second.mean)
    assert cache.stat().st_mtime_ns == stamp
    # A changed folder invalidates the cache; so does a cache whose manifest never got written.
    Image.new("RGB", (40, 40), GREEN).save(tmp_path / "train" / "dog" / "c_new.png")
    assert len(load_dataset("imagenet-folder", tmp_path).train_x) == 4  # 5 images, one held out
    (tmp_path / image_folder.CACHE_DIR_NAME / "train-256.json").unlink()
    assert len(load_dataset("imagenet-folder", tmp_path).train_x) == 4


def test_image_folder_cache_survives_moving_the_folder(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "before")
    first = load_dataset("imagenet-folder", tmp_path / "before")
    (tmp_path / "before").rename(tmp_path / "after")
    monkeypatch.setattr(image_folder, "preprocess_image", must_not_decode)
    assert torch.equal(load_dataset("imagenet-folder", tmp_path / "after").train_x, first.train_x)


def test_image_folder_limit_spreads_over_classes(tmp_path):
    write_image_folder(tmp_path)
    loaded = load_dataset("imagenet-folder", tmp_path, train_limit=2, test_limit=1)
    assert loaded.train_y.tolist() == [0, 1] and len(loaded.test_x) == 1


def test_image_folder_missing_and_corrupt(tmp_path):
    with pytest.raises(DataUnavailable, match="train"):
        load_dataset("imagenet-folder", tmp_path)
    write_image_folder(tmp_path)
    broken = tmp_path / "train" / "cat" / "c_broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(DataCorrupt, match=str(broken)):
        load_dataset("imagenet-folder", tmp_path)


# ---------------------------------------------------------------- augmentation


def random_batch(batch=6, channels=1, size=28, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, channels, size, size), generator=generator, dtype=torch.uint8)


def test_canvas_size():
    assert canvas_size(227) == 256 and canvas_size(32) == 36 and canvas_size(24) == 27
    assert canvas_size(1) == 1


def test_shapes_and_test_view_is_centre_of_resized_centred_image():
    x, mean = random_batch(), torch.rand(1, 28, 28) * 255
    transform = BatchTransform(32, 28, mean, augment=True)
    assert transform.train(x, torch.Generator().manual_seed(0)).shape == (6, 1, 32, 32)
    assert transform.ten_crop(x).shape == (10, 6, 1, 32, 32)
    view = transform.test(x)
    assert view.dtype == torch.float32 and torch.equal(view, transform.test(x))
    canvas = F.interpolate(x.float() - mean, size=(36, 36), mode="bilinear", align_corners=False)
    assert torch.allclose(view, canvas[:, :, 2:34, 2:34], atol=1e-4)


def test_unit_input_scale_divides_the_centred_pixels():
    x = torch.full((4, 3, 28, 28), 200, dtype=torch.uint8)
    transform = BatchTransform(32, 28, torch.full((3, 28, 28), 50.0), augment=False, scale=75.0)
    assert torch.allclose(transform.test(x), torch.tensor(2.0))


def test_pixel_std_of_known_images():
    from reproduce.datasets.image_data import ImageData, pixel_std

    images = torch.tensor([0, 100], dtype=torch.uint8).repeat_interleave(2).reshape(4, 1, 1, 1)
    labels = torch.zeros(4, dtype=torch.long)
    data = ImageData("toy", images, labels, images, labels, ["a"], images.float().mean(0), images, labels, {})
    assert pixel_std(data) == pytest.approx(torch.tensor([-50.0, -50, 50, 50]).std().item())


def test_mean_subtraction_on_a_constant_image():
    x = torch.full((4, 3, 28, 28), 200, dtype=torch.uint8)
    transform = BatchTransform(32, 28, torch.full((3, 28, 28), 50.0), augment=True)
    assert torch.allclose(transform.train(x, torch.Generator().manual_seed(0)), torch.tensor(150.0))
    assert torch.allclose(transform.test(x), torch.tensor(150.0))


def test_train_is_reproducible_per_seed_and_differs_across_seeds():
    x, transform = random_batch(batch=32), BatchTransform(32, 28, torch.zeros(1, 28, 28), augment=True)
    first = transform.train(x, torch.Generator().manual_seed(3))
    again = transform.train(x, torch.Generator().manual_seed(3))
    other = transform.train(x, torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_without_augment_train_is_the_test_view():
    x, transform = random_batch(), BatchTransform(32, 28, torch.zeros(1, 28, 28), augment=False)
    assert torch.equal(transform.train(x, torch.Generator().manual_seed(0)), transform.test(x))


def test_about_half_the_images_are_flipped():
    # A left-to-right ramp stays increasing in a plain crop and decreases in a flipped one.
    ramp = torch.arange(28, dtype=torch.uint8).mul(9).expand(2000, 1, 28, 28)
    views = BatchTransform(24, 28, torch.zeros(1, 28, 28), augment=True).train(ramp, torch.Generator().manual_seed(0))
    flipped = views[:, 0, 0, 0] > views[:, 0, 0, -1]
    assert 0.45 < flipped.float().mean().item() < 0.55


def test_crop_per_image_matches_slicing():
    canvas = torch.arange(5 * 2 * 9 * 9, dtype=torch.float32).reshape(5, 2, 9, 9)
    rows, cols = torch.tensor([0, 4, 2, 1, 3]), torch.tensor([4, 0, 2, 3, 1])
    flips = torch.tensor([False, True, False, True, True])
    crops = crop_per_image(canvas, rows, cols, 5, flips)
    for b in range(5):
        expected = canvas[b, :, rows[b] : rows[b] + 5, cols[b] : cols[b] + 5]
        assert torch.equal(crops[b], expected.flip(-1) if flips[b] else expected)


def test_random_crops_cover_every_offset():
    transform = BatchTransform(24, 28, torch.zeros(1, 28, 28), augment=True)  # canvas 27: offsets 0..3
    position = torch.arange(27 * 27, dtype=torch.float32).reshape(1, 1, 27, 27)
    transform._centred_canvas = lambda x: position.expand(len(x), 1, 27, 27)
    views = transform.train(torch.zeros(400, 1, 28, 28, dtype=torch.uint8), torch.Generator().manual_seed(0))
    top_left = views[:, 0, 0, :].min(dim=1).values  # the flip does not move the smallest corner
    rows, cols = (top_left // 27).long(), (top_left % 27).long()
    assert set(rows.tolist()) == {0, 1, 2, 3} and set(cols.tolist()) == {0, 1, 2, 3}


def test_ten_crop_views():
    x = random_batch(batch=3, channels=3, size=32)
    transform = BatchTransform(24, 32, torch.zeros(3, 32, 32), augment=True)  # canvas 27
    views = transform.ten_crop(x)
    canvas = F.interpolate(x.float(), size=(27, 27), mode="bilinear", align_corners=False)
    assert torch.allclose(views[0], canvas[:, :, :24, :24]) and torch.allclose(views[3], canvas[:, :, 3:, 3:])
    assert torch.allclose(views[1], canvas[:, :, :24, 3:]) and torch.allclose(views[2], canvas[:, :, 3:, :24])
    assert torch.equal(views[4], transform.test(x))
    for i in range(5):
        assert torch.equal(views[5 + i], views[i].flip(-1))


def test_mean_of_the_wrong_size_is_an_error():
    with pytest.raises(ValueError, match="28"):
        BatchTransform(32, 28, torch.zeros(1, 32, 32), augment=True)


# ---------------------------------------------------------------- batches


def test_iterate_batches_follows_the_order_once():
    x, y = torch.arange(10).float()[:, None], torch.arange(10)
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    batches = list(iterate_batches(x, y, 3, device="cpu", order=order))
    assert [len(by) for _, by in batches] == [3, 3, 3, 1]
    assert torch.equal(torch.cat([by for _, by in batches]), order)
    assert all(torch.equal(bx[:, 0].long(), by) for bx, by in batches)


def test_iterate_batches_sequential_and_drop_last():
    x, y = torch.zeros(10, 2), torch.arange(10)
    batches = list(iterate_batches(x, y, 4, device=torch.device("cpu"), drop_last=True))
    assert [by.tolist() for _, by in batches] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_iterate_batches_reads_a_memmap(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(12, dtype=np.uint8).reshape(6, 2))
    x = torch.from_numpy(np.load(tmp_path / "x.npy", mmap_mode="c"))
    (bx, by), *_ = iterate_batches(x, torch.arange(6), 4, device="cpu", order=torch.tensor([5, 0, 1, 2, 3, 4]))
    assert bx.tolist() == [[10, 11], [0, 1], [2, 3], [4, 5]] and by.tolist() == [5, 0, 1, 2]


def test_to_device_if_fits():
    x = torch.zeros(100, dtype=torch.uint8)
    assert to_device_if_fits(x, "cpu", budget_bytes=10) is x
    assert to_device_if_fits(x, "meta", budget_bytes=10).device.type == "cpu"
    assert to_device_if_fits(x, "meta", budget_bytes=100).device.type == "meta"


def test_preprocessing_in_worker_processes_writes_what_one_process_writes(tmp_path, monkeypatch):
    write_image_folder(tmp_path)
    paths = sorted(str(p) for p in (tmp_path / "train").rglob("*") if p.suffix in (".png", ".jpg"))
    monkeypatch.setattr(data.os, "sched_getaffinity", lambda pid: {0, 1})  # two workers, even on one core
    npy = tmp_path / "images.npy"
    np.lib.format.open_memmap(npy, mode="w+", dtype=np.uint8, shape=(len(paths), 3, 256, 256)).flush()
    image_folder.preprocess_all(paths, npy, desc="test", chunk=1)  # one chunk per image: the pool path
    written = np.load(npy)
    for index, path in enumerate(paths):
        assert (written[index] == image_folder.preprocess_image(path)).all(), path


def test_a_cache_being_built_is_waited_for_not_built_twice(tmp_path, monkeypatch):
    write_image_folder(tmp_path)
    stem = tmp_path / image_folder.CACHE_DIR_NAME / "train-256"
    with image_folder._cache_lock(stem):  # another process builds it: this one must wait, then find it done
        import threading

        loaded = []
        waiter = threading.Thread(target=lambda: loaded.append(load_dataset("imagenet-folder", tmp_path)))
        waiter.start()
        waiter.join(timeout=2)
        assert waiter.is_alive() and not loaded  # blocked on the lock
    waiter.join(timeout=120)
    assert loaded and loaded[0].train_x.shape[0] == 3
