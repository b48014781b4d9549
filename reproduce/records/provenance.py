"""What code made a record: the commit and whether the source was clean, a digest of the package's code,
and the digest of the training code - the modules under nets/, datasets/ and training/ - that decides
whether a record is current. Digests are of the code alone: comments, docstrings, blank lines and
import statements are left out and module-qualified names are read by their last part, so editing prose,
moving a module or renaming the module a name comes from never makes a record stale; any change of code
does, unless declared numerically equivalent (reproduce.records.declared).
"""

from __future__ import annotations

import ast
import hashlib
import io
import re
import sys
import textwrap
import tokenize
from functools import lru_cache
from pathlib import Path
from typing import Any

from reproduce.base.git import git_text
from reproduce.base.paths import PROJECT_ROOT
from reproduce.records import declared


def git_state() -> dict[str, Any]:
    """Commit and dirty flag of the checkout (None when not a git checkout), and a source digest."""
    commit = (git_text(PROJECT_ROOT, "rev-parse", "HEAD") or "").strip() or None
    # Judged on the code alone: results/ changes while runs are written, which says nothing of the code.
    status = git_text(PROJECT_ROOT, "status", "--porcelain", "--untracked-files=no", "--", *SOURCE_PATHS) \
        if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status),
            "source_sha256": source_digest(), "training_sha256": training_digest()}


SOURCE_PATHS = ("reproduce", "pyproject.toml")  # what decides whether a checkout's code is its commit's
# The layers whose code decides a run's numbers (reproduce.LAYERS): a record made by other code of these is
# stale; editing the report code (verdicts, the book) leaves finished runs valid. Parameter values
# (spec/params.py) are covered by the config hash instead.
TRAINING_LAYERS = ("nets", "datasets", "training")
# Before the package had layer folders: the training modules by name, and their digest by file name and code
# in this order (the digests the records of that code carry; reproduce.records.code_history reads them).
FLAT_TRAINING_MODULES = ("alexnet", "augment", "batches", "cifar_nets", "data", "distributed", "execution", "layers",
                         "lighting", "models", "train")


def source_digest() -> str:
    """SHA-256 over the code of the package's modules, comments and docstrings left out: identifies the code
    even without git (a copy of the tree on a GPU machine, an unpacked archive)."""
    package = PROJECT_ROOT / "reproduce"
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        stat = path.stat()  # a file's code is worked out once per version of it
        digest.update(str(path.relative_to(package)).encode())
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


def training_files() -> list[Path]:
    package = PROJECT_ROOT / "reproduce"
    return sorted(path for layer in TRAINING_LAYERS for path in (package / layer).glob("*.py"))


def training_digest() -> str:
    """The digest of the training code: the portable code of each of its top-level definitions (portable_units),
    sorted, so that neither a module's path nor its name nor which module a definition lives in counts."""
    return files_digest(training_files())


def files_digest(paths: list[Path]) -> str:
    """portable_digest of the definitions in these files."""
    return portable_digest([unit for path in paths
                            for unit in _units(str(path), path.stat().st_mtime_ns, path.stat().st_size)])


def portable_digest(units: list[str]) -> str:
    digest = hashlib.sha256()
    for unit in sorted(units):
        digest.update(hashlib.sha256(unit.encode()).digest())
    return digest.hexdigest()


@lru_cache(maxsize=256)
def _units(path: str, modified: int, size: int) -> tuple[str, ...]:
    return tuple(portable_units(Path(path).read_bytes().decode("utf-8")))


def portable_units(source: str) -> list[str]:
    """A module's top-level definitions and statements, each as code_text, without the import statements, and
    with every name imported from the package read without its module: `results.new_record(...)` and
    `store.new_record(...)` are the same code, wherever new_record lives. What is left is what it computes."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return [code_text(source)]
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("reproduce"):
            imported |= {alias.asname or alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            imported |= {alias.asname for alias in node.names if alias.name.startswith("reproduce") and alias.asname}
    lines = source.splitlines()
    for node in ast.walk(tree):  # imports inside functions too
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            lines[node.lineno - 1:node.end_lineno] = [""] * (node.end_lineno - node.lineno + 1)
    qualified = re.compile(r"(?<![\w.])(" + "|".join(sorted(map(re.escape, imported))) + r")\.(?=[A-Za-z_])") \
        if imported else None
    units = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) or (
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            continue  # imports, and the module's docstring
        first = node.decorator_list[0].lineno if getattr(node, "decorator_list", None) else node.lineno
        text = code_text(textwrap.dedent("\n".join(lines[first - 1:node.end_lineno])))
        if text:
            units.append(qualified.sub("", text) if qualified else text)
    return units


def is_current_code(training_sha256: str | None) -> bool:
    """Made by the current training code, or by earlier code declared numerically equivalent to it
    (reproduce/records/equivalent_code.toml, each declaration with its evidence)."""
    return training_sha256 in declared.accepted_digests(training_digest())


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
