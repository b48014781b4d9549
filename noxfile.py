"""Entry points: `nox -s reproduce`, `nox -s book`, `nox -s bench`, `nox -s tests`.

One environment for all sessions. torch's CUDA build makes a virtualenv about 5.6 GB; nox's
default of one venv per session would hold a copy per session and reinstall it each time
pyproject changes. Instead every session runs in one shared `.venv` at the project root,
created on first use and reinstalled only when pyproject.toml changes (a hash stamp).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
ENV = ROOT / ".venv"
STAMP = ENV / ".installed-from"
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

nox.options.default_venv_backend = "none"
nox.options.sessions = ["tests"]


def shared_python(session: nox.Session) -> str:
    """The shared environment's interpreter, (re)installed when pyproject.toml has changed."""
    python = ENV / "bin" / "python"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not python.exists():
        # sys.executable, not `python` on PATH: nox with venv_backend="none" runs whatever is there.
        session.run(sys.executable, "-m", "venv", str(ENV), external=True)
    if not STAMP.exists() or STAMP.read_text() != wanted:
        session.log("installing the project's environment in .venv: torch's CUDA build (PyPI has no other for Linux) "
                    "is about 3 GB to download and 5.6 GB installed, a few minutes; later sessions reuse it")
        session.run(str(python), "-m", "pip", "install", "--progress-bar", "on", "-e", ".[test,report]", external=True)
        STAMP.write_text(wanted)
    return str(python)


def ensure_fashion_mnist(session: nox.Session) -> None:
    """Install Debian's Fashion-MNIST package when it is missing and we are allowed to."""
    local = ROOT / "data" / "FashionMNIST" / "raw"
    if FASHION_SYSTEM_DIR.exists() or local.exists():
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        session.log("installing the Debian package dataset-fashion-mnist (Fashion-MNIST, 30 MB)")
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        session.run("apt-get", "install", "-y", "-qq", "dataset-fashion-mnist", external=True)
    else:
        session.warn("Fashion-MNIST not found: `sudo apt-get install dataset-fashion-mnist`, or run once "
                     "with internet access so torchvision downloads it into data/")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, on the CPU (a few minutes)."""
    python = shared_python(session)
    ensure_fashion_mnist(session)
    session.run(python, "-m", "pytest", *session.posargs, external=True)


@nox.session
def reproduce(session: nox.Session) -> None:
    """Train the preset's grid (finished runs are reused), run every notebook through papermill (they
    find their runs done, and only decide and plot), then build the book.

    Options after `--` are `python -m reproduce all`'s (see its --help): --preset P (default auto: gpu
    with CUDA, else cpu), --seeds N, --only ABLATION[,ABLATION], --workers N|auto, --per-gpu K,
    --time-budget SECONDS, --dry-run, --executor submitit with --slurm-partition, --slurm-time, ...,
    and any run parameter (--data-dir, --device, ...). A failed run or notebook is reported and shown
    as failed in the book; the session then exits non-zero after building it.
    """
    python = shared_python(session)
    ensure_fashion_mnist(session)
    session.run(python, "-m", "reproduce", "all", *session.posargs, external=True)


@nox.session
def notebook(session: nox.Session) -> None:
    """One ablation notebook through papermill, in the project's environment:
    `nox -s notebook -- lrn -p seeds 3` (then `-p NAME VALUE` for any parameter of the notebook:
    `python -m reproduce params`). It trains what its runs lack and writes
    results/notebooks/adhoc/<ablation>.ipynb (not in git; the book's are `nox -s reproduce`'s). A bad
    parameter stops it with one line naming it."""
    python = shared_python(session)
    ensure_fashion_mnist(session)
    session.run(python, "-m", "reproduce", "notebook", *session.posargs, external=True)


@nox.session
def book(session: nox.Session) -> None:
    """Build the HTML book from results/ alone: no training (book/_build/html/index.html)."""
    python = shared_python(session)
    session.run(python, "-m", "reproduce", "book", external=True)


@nox.session
def bench(session: nox.Session) -> None:
    """Training throughput of the trainer against the seeds' d2l loop (a benchmark, not a test).

    Options after `--` (see `python -m reproduce bench --help`): --networks paper|small|all,
    --device, --batch-size, --warmup, --seconds, --profile on. Records go to results/bench/.
    """
    python = shared_python(session)
    ensure_fashion_mnist(session)
    session.run(python, "-m", "reproduce", "bench", *session.posargs, external=True)


LENT_ENV = ROOT / ".venv-lent"
# The lent GPU machine's versions (scripts/lent-gpu-packages.txt): torch and torchvision as there, and the
# other packages the project's GPU path imports, all of which it has; none of the report's.
LENT_REQUIREMENTS = ("torch==2.11.0", "torchvision==0.26.0", "numpy==2.5.2", "pandas", "matplotlib", "scipy", "tqdm",
                     "pillow")
LENT_PYTHON = "3.12"


@nox.session(name="gpu-rehearsal")
def gpu_rehearsal(session: nox.Session) -> None:
    """scripts/gpu_session.sh on this CPU under the lent GPU machine's Python and packages: torch 2.11.0 and
    torchvision 0.26.0 from PyPI in .venv-lent (a CUDA build, about 5 GB, downloaded once), no submitit, nox,
    papermill or jupyter-book; the project from this tree. It trains the smoke preset to a budget in a scratch
    folder, so results/ stays as it is. Options after `--` go to the script (default: --preset smoke --device cpu
    --seconds 150 --reserve 30 --bench off)."""
    python = lent_python(session)
    scratch = Path(session.create_tmp()) / "gpu-rehearsal"
    shutil.rmtree(scratch, ignore_errors=True)
    data = scratch / ".fashion-mnist-gz"
    data.mkdir(parents=True)
    for source in fashion_gz_files(session):
        shutil.copy(source, data / source.name)
    options = session.posargs or ["--preset", "smoke", "--device", "cpu", "--seconds", "150", "--reserve", "30",
                                  "--bench", "off"]
    env = {"PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT), "OUT": str(scratch / "out")}
    session.run(str(python), "-c", "import platform, torch, torchvision; print('rehearsing under python', "
                "platform.python_version(), 'torch', torch.__version__, 'torchvision', torchvision.__version__)",
                external=True, env=env)
    session.chdir(scratch)
    # 75: the budget stopped the grid (what a loan usually ends with); anything else non-zero fails the session.
    session.run("bash", str(ROOT / "scripts" / "gpu_session.sh"), *options, external=True, env=env,
                success_codes=[0, 75])
    session.log(f"the rehearsal's results are in {scratch}/results and {scratch}/out/results.tgz")


def lent_python(session: nox.Session) -> Path:
    """.venv-lent's interpreter, made with Python 3.12 where this machine has it (else this Python, said so)."""
    python = LENT_ENV / "bin" / "python"
    wanted = " ".join(LENT_REQUIREMENTS)
    stamp = LENT_ENV / ".installed-from"
    if not python.exists():
        base = shutil.which(f"python{LENT_PYTHON}")
        if base is None:
            session.warn(f"no python{LENT_PYTHON} here: the rehearsal uses {sys.version.split()[0]} (the lent machine "
                         "has 3.12.3)")
        session.run(base or sys.executable, "-m", "venv", str(LENT_ENV), external=True)
    if not stamp.exists() or stamp.read_text() != wanted:
        session.log("installing the lent machine's torch 2.11.0 from PyPI (a CUDA build: about 3 GB to download)")
        session.run(str(python), "-m", "pip", "install", "--progress-bar", "on", *LENT_REQUIREMENTS, external=True)
        stamp.write_text(wanted)
    return python


def fashion_gz_files(session: nox.Session) -> list[Path]:
    ensure_fashion_mnist(session)
    found = sorted(FASHION_SYSTEM_DIR.glob("*.gz"))
    if len(found) != 4:
        session.error(f"the rehearsal needs Debian's Fashion-MNIST .gz files in {FASHION_SYSTEM_DIR}")
    return found
