"""Training-code changes declared numerically equivalent, and the evidence that they are.

A record names the digest of the training modules that made it (provenance.TRAINING_LAYERS), and
a record of any other digest is stale. A refactor that changes no number would then make every
record stale, GPU records included, which cannot be redone without a GPU. Such a change can be
declared instead, in reproduce/records/equivalent_code.toml: a pair (earlier digest, later digest), the
two commits, why, and the evidence - reference runs of every model family trained by both codes
on one machine, one CPU thread, with bit-identical final weights (`python -m reproduce equivalence
EARLIER LATER` writes it to results/equivalence/). Records of the earlier code then stay current;
a chain of declarations is followed back. tests/test_equivalence.py retrains the references of
every declared pair from git, on whatever machine it runs.

What the evidence covers: the CPU's fp32 eager path on Fashion-MNIST. A change to what runs only
on CUDA (autocast, compile) or only on colour data (PCA lighting) is not shown equivalent by it
and must not be declared so without runs that exercise it.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path

DECLARATIONS = Path(__file__).with_name("equivalent_code.toml")


@dataclass(frozen=True)
class Declaration:
    earlier: str
    later: str
    earlier_commit: str
    later_commit: str
    why: str
    evidence: str


class DeclarationError(ValueError):
    """equivalent_code.toml says something that cannot be honoured."""


@functools.lru_cache(maxsize=None)
def load_declarations(path: Path = DECLARATIONS, kind: str = "change") -> tuple[Declaration, ...]:
    """The declarations of one kind: `change` (training code shown numerically equivalent by its reference
    runs), or `analysis` (the analysis code moved without a change of what it computes: its portable code,
    provenance.portable_code, the same at both commits, which tests/test_equivalence.py checks from git)."""
    if not path.exists():
        return ()
    with open(path, "rb") as handle:
        entries = tomllib.load(handle).get(kind, [])
    try:
        return tuple(Declaration(**entry) for entry in entries)
    except TypeError as exc:
        raise DeclarationError(f"{path.name}: {exc}") from None


def accepted_digests(current: str, path: Path | None = None, kind: str = "change") -> frozenset[str]:
    """The current digest and every earlier one declared equivalent to it, through a chain."""
    path = path or DECLARATIONS
    accepted = {current}
    grew = True
    while grew:
        before = len(accepted)
        accepted |= {d.earlier for d in load_declarations(path, kind) if d.later in accepted}
        grew = len(accepted) > before
    return frozenset(accepted)
