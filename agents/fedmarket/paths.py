"""Where fedmarket keeps its files: one data directory, overridable for tests and several users."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir

HOME_ENV = "FEDMARKET_HOME"


def data_dir() -> Path:
    """The data directory: $FEDMARKET_HOME if set, else the platform's user data dir."""
    override = os.environ.get(HOME_ENV)
    path = Path(override) if override else Path(user_data_dir("fedmarket", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def repo_root() -> Path:
    """The source checkout (contracts/, node_modules/, deploy/ live here)."""
    return Path(__file__).resolve().parents[2]
