"""The package's shape: its folders are its layers (reproduce.LAYERS, in the order data flows), each module
imports only from its own layer or those below, lazy imports included, and nothing imports in a circle.
The training code is the layers whose digest a record carries; the declarations need no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import reproduce
from reproduce.records import provenance

PACKAGE = Path(reproduce.__file__).resolve().parent
TOP = {"__init__", "__main__", "cli", "commands"}  # the driver sits above every layer


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE).with_suffix("")
    return ".".join(relative.parts)


def layer_of(module: str) -> int:
    """The index of the module's folder in reproduce.LAYERS; the driver above them all."""
    first = module.split(".")[0]
    return len(reproduce.LAYERS) if first in TOP else reproduce.LAYERS.index(first)


def imports() -> dict[str, set[str]]:
    """Every module of the package -> the package's modules it imports, anywhere in it."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py") if path.name != "__init__.py"}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("reproduce"):
                base = node.module.removeprefix("reproduce").lstrip(".")
                for alias in node.names:
                    joined = f"{base}.{alias.name}" if base else alias.name
                    found.add(joined if joined in modules else base)
            elif isinstance(node, ast.Import):
                found |= {a.name.removeprefix("reproduce.") for a in node.names if a.name.startswith("reproduce.")}
        graph[name] = {m for m in found if m in modules} - {name}
    return graph


def test_every_module_lives_in_a_declared_layer():
    for path in PACKAGE.rglob("*.py"):
        module = module_name(path)
        assert module.split(".")[0] in (*reproduce.LAYERS, *TOP), module


def test_no_module_imports_from_a_layer_above_its_own():
    upward = [(module, other) for module, found in imports().items() for other in found
              if layer_of(other) > layer_of(module)]
    assert not upward, upward


def test_the_import_graph_has_no_cycle_lazy_imports_included():
    graph = imports()

    def reaches(start, target, seen=()):
        return any(n == target or (n not in seen and reaches(n, target, (*seen, n))) for n in graph[start])

    assert not [module for module in graph if reaches(module, module)]


def test_the_training_code_is_the_layers_a_record_digests_and_they_never_import_the_verdicts_or_report():
    assert set(provenance.TRAINING_LAYERS) <= set(reproduce.LAYERS)
    training = {m for m in imports() if m.split(".")[0] in provenance.TRAINING_LAYERS}
    assert {"training.train", "nets.models", "datasets.data"} <= training
    assert all(layer_of(o) < reproduce.LAYERS.index("verdicts") for m in training for o in imports()[m])


def test_the_declarations_import_no_torch():
    """The claims schema and the parameters sit at the bottom: reading them needs neither torch nor the trainer."""
    code = ("import sys, reproduce.spec.plan, reproduce.spec.params; print(sorted(m for m in sys.modules if m == "
            "'torch' or m.startswith('reproduce')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = eval(done.stdout)
    assert "torch" not in loaded and all(m.split(".")[1] in ("spec", "base") for m in loaded if m != "reproduce"), loaded
