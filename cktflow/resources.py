"""Find the data folders (pdk/, templates/) both in a source checkout and in an installed wheel.

In a checkout they sit at the repository root beside cktflow/; a wheel installs them as the
data-only packages cktflow/pdk and cktflow/templates (see pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The folder `name` ("pdk" or "templates"), wherever this copy of cktflow finds it."""
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cktflow data folder '{name}' is missing (looked in {_PACKAGE_DIR} and its parent)")


def pdk_dir() -> Path:
    return data_dir("pdk")


def templates_dir() -> Path:
    return data_dir("templates")


def weights_dir() -> Path:
    """The shipped model's files (default.pt, predictor.pt, evaluator.pt): package data of cktflow.model."""
    return _PACKAGE_DIR / "model" / "weights"
