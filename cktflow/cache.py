"""Where cktflow keeps generated files: the dataset, Ray's session files, downloaded or built data.

One folder for everything, so that a user can see, move or delete it: $CKTFLOW_CACHE if set, else
$XDG_CACHE_HOME/cktflow, else ~/.cache/cktflow.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """The cache folder (created on first use)."""
    env = os.environ.get("CKTFLOW_CACHE")
    if env:
        path = Path(env).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
        path = Path(base).expanduser() / "cktflow"
    path.mkdir(parents=True, exist_ok=True)
    return path
