"""The registered design of the CPU study (reproduce/spec/registration.toml): its seeds, spreads, sizing
and family, committed before its confirmatory runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reproduce.spec import plan


def load(path: Path | None = None) -> dict[str, Any]:
    """reproduce/spec/registration.toml: the CPU study's registered design ({} before there is one)."""
    import tomllib

    path = path or PATH
    if not path.exists():
        return {}
    with open(path, "rb") as handle:
        return tomllib.load(handle)


PATH = plan.REGISTRY_PATH.with_name("registration.toml")
