"""A run's identity: the hash of the config values that decide its result (params.hashed_config), and
the id that names its record, `<model>_<dataset>_s<seed>_<hash>`.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from reproduce.spec.params import hashed_config


def config_hash(config: dict[str, Any]) -> str:
    """SHA-256 of the result-deciding parameters (params.hashed_config), in a canonical JSON form."""
    canonical = json.dumps(hashed_config(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def run_id(config: dict[str, Any]) -> str:
    """A readable, filesystem-safe id: model, dataset, seed and the config hash."""
    readable = f"{config['model']}_{config['dataset']}_s{config['seed']}"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", readable)
    return f"{safe}_{config_hash(config)[:12]}"
