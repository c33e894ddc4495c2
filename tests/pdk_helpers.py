"""Shared by the tests that need a real transistor PDK's models installed."""

from __future__ import annotations

import os
import warnings

import pytest

from cktflow.technology import Technology, load_technology


def require_installed(name: str = "sky130") -> Technology:
    """The PDK, or skip the calling test module with a loud reason when its models are not
    installed; with CKTFLOW_REQUIRE_PDK=1 (.ci/run sets it) a missing PDK fails instead, so CI can
    never skip these tests silently."""
    tech = load_technology(name)
    if not tech.is_installed():
        why = (f"the {name} PDK is not installed in {tech.install_dir}: run `cktflow pdk install {name}` "
               f"(or `python -m cktflow.pdk_install {name}`; `make setup` does it)")
        if os.environ.get("CKTFLOW_REQUIRE_PDK"):
            raise RuntimeError(why)
        warnings.warn(why)
        pytest.skip(why, allow_module_level=True)
    return tech
