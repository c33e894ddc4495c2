"""Technology description loaded from pdk/*.yaml (data, not code)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from ..resources import pdk_dir
from .basis import DEVICE_KINDS

__all__ = ["Pdk", "load_pdk", "DEFAULT_PDK"]

DEFAULT_PDK = "ocb_behavioural"


@dataclass(frozen=True)
class Pdk:
    name: str
    r0: float
    c0: float
    value_scale: dict[str, float]
    value_range: dict[str, tuple[float, float]]
    templates: str
    path: Path

    def in_range(self, kind: str, value: float) -> bool:
        lo, hi = self.value_range[kind]
        return lo * (1 - 1e-9) <= value <= hi * (1 + 1e-9)


@lru_cache(maxsize=None)
def load_pdk(name: str = DEFAULT_PDK) -> Pdk:
    path = pdk_dir() / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in pdk_dir().glob("*.yaml"))
        raise FileNotFoundError(f"unknown PDK '{name}' (known: {', '.join(known)})")
    data = yaml.safe_load(path.read_text())
    scale = {k: float(data["value_scale"][k]) for k in DEVICE_KINDS}
    ranges = {k: (float(data["value_range"][k][0]), float(data["value_range"][k][1])) for k in DEVICE_KINDS}
    return Pdk(name=data["name"], r0=float(data["gm_cell"]["r0"]), c0=float(data["gm_cell"]["c0"]),
               value_scale=scale, value_range=ranges, templates=data["templates"], path=path)
