"""Tests on a real PDK skip loudly when its models are not installed, or fail when
CKTFLOW_REQUIRE_PDK=1 (.ci/run sets it, so CI can never skip them silently)."""

from __future__ import annotations

import os
import warnings

import pytest

from cktflow.technology import Technology, load_technology


def require_pdk(name: str = "sky130") -> Technology:
    """The PDK's description; skips the calling test module when its models are not installed."""
    tech = load_technology(name)
    if not tech.is_installed():
        why = (f"the {name} PDK is not installed in {tech.install_dir}: run `cktflow pdk install {name}` "
               f"(or `python -m cktflow.pdk_install {name}`; `make setup` does it)")
        if os.environ.get("CKTFLOW_REQUIRE_PDK"):
            raise RuntimeError(why)
        warnings.warn(why)
        pytest.skip(why, allow_module_level=True)
    return tech
