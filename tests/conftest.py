"""Fixtures shared by the tests: no network, ever, and small datasets in the real formats."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.error import URLError

import pytest
import torchvision.datasets.utils as tv_utils
from formats import write_fashion_mnist

from reproduce import cli
from reproduce.datasets import data


def no_network(*args, **kwargs):
    raise URLError("no network in tests")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """torchvision's two network calls fail as they do offline; the rest of its download
    path (checking a present archive, extracting it, error handling) runs as it is."""
    monkeypatch.setattr(tv_utils, "_get_redirect_url", no_network)
    monkeypatch.setattr(tv_utils, "_urlretrieve", no_network)


@pytest.fixture
def system_fashion(tmp_path, monkeypatch):
    """A stand-in for the Debian package's folder, found through the env var."""
    folder = tmp_path / "system"
    arrays = write_fashion_mnist(folder)
    monkeypatch.setenv(data.FASHION_MNIST_DIR_ENV, str(folder))
    return folder, arrays


@pytest.fixture
def tiny_fashion(tmp_path, monkeypatch):
    """A data_dir whose Fashion-MNIST holds 192 training and 64 test images: enough for a few steps."""
    folder = tmp_path / "system-tiny"
    write_fashion_mnist(folder, train_n=192, test_n=64)
    monkeypatch.setenv(data.FASHION_MNIST_DIR_ENV, str(folder))
    return tmp_path / "data"


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """`reproduce notebooks --preset smoke` for three notebooks on tiny Fashion-MNIST files, in a
    scratch directory: the whole path from notebook to record to built page."""
    work = tmp_path_factory.mktemp("smoke")
    write_fashion_mnist(work / "system", train_n=192, test_n=64)
    shutil.copytree(Path(__file__).resolve().parents[1] / "book", work / "book",
                    ignore=shutil.ignore_patterns("_build", "generated", "_toc.yml"))
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv(data.FASHION_MNIST_DIR_ENV, str(work / "system"))
    monkeypatch.chdir(work)
    code = cli.main(["notebooks", "--preset", "smoke", "--only", "lrn,architecture,features",
                     "--results-dir", "results", "--book-dir", "book"])
    monkeypatch.undo()
    return work, code
