"""Where the project is: its root, whatever folder the command runs in.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # base/ -> reproduce/ -> the project
