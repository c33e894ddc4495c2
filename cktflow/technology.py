"""One interface for every technology description in pdk/*.yaml.

Two kinds today: the OCB behavioural "PDK" (ideal gm/R/C cells, `kind: behavioural`, also read by
`cktflow.circuit.pdk.load_pdk` for its existing callers) and real transistor PDKs such as sky130
(`kind: transistor`: a SPICE model library with corners, the simulator settings it needs, a nominal
supply, device kinds with terminals and W/L/nf/m limits and grid, an install recipe).

A transistor PDK's models live in the cktflow cache (<cache>/pdk/<install.folder>/), put there by
`cktflow pdk install <name>` (cktflow.pdk_install); `require_installed()` raises
`PdkNotInstalledError` naming that command when they are missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from .cache import cache_dir
from .resources import pdk_dir

__all__ = ["DeviceKind", "Technology", "PdkNotInstalledError", "DeviceSizeError", "load_technology",
           "list_technologies", "INSTALL_MARKER"]

#: The file in an installed PDK folder that records the sha256 of what was unpacked.
INSTALL_MARKER = ".cktflow-installed"


class PdkNotInstalledError(FileNotFoundError):
    """A transistor PDK's model files are not in the cache."""


class DeviceSizeError(ValueError):
    """A device size outside the PDK's limits (the message names the device and the field)."""


@dataclass(frozen=True)
class DeviceKind:
    name: str                      # the PDK's short name, e.g. nfet_01v8
    model: str                     # the SPICE subcircuit or model name
    type: str                      # nmos, pmos, capacitor, resistor (behavioural: R, C, gm)
    terminals: tuple[str, ...]
    limits: dict[str, tuple[float, float]] = field(default_factory=dict)   # w, l, nf, m (or value)
    grid: float | None = None      # um
    extra: dict = field(default_factory=dict)

    def check(self, instance: str = "", **sizes: float) -> None:
        """Raise DeviceSizeError when a size is outside the limits or off the grid."""
        who = f"{instance} ({self.name})" if instance else self.name
        for key, value in sizes.items():
            lim = self.limits.get(key.lower())
            if lim is None:
                continue
            lo, hi = lim
            if not lo * (1 - 1e-9) <= float(value) <= hi * (1 + 1e-9):
                raise DeviceSizeError(f"{who}: {key}={value:g} is outside the PDK's range [{lo:g}, {hi:g}]")
            if self.grid and key.lower() in ("w", "l"):
                steps = float(value) / self.grid
                if abs(steps - round(steps)) > 1e-6:
                    raise DeviceSizeError(f"{who}: {key}={value:g} is not on the {self.grid:g} um grid")

    def snap(self, value: float) -> float:
        """`value` rounded to the grid (um)."""
        if not self.grid:
            return value
        return round(round(value / self.grid) * self.grid, 6)


@dataclass(frozen=True)
class Technology:
    name: str
    kind: str                      # "behavioural" or "transistor"
    description: str
    path: Path                     # the yaml file
    devices: dict[str, DeviceKind]
    templates: str
    corners: tuple[str, ...] = ()
    default_corner: str | None = None
    library: str | None = None     # model library, relative to the installed folder
    simulator_settings: tuple[str, ...] = ()
    scale: float = 1.0
    supply_v: float | None = None
    temperature_c: float = 27.0
    install: dict | None = None

    # -- transistor PDKs -----------------------------------------------------------------------
    @property
    def install_dir(self) -> Path | None:
        """Where the model files are (or would be) installed; None for a behavioural PDK."""
        if not self.install:
            return None
        return cache_dir() / "pdk" / self.install["folder"]

    def is_installed(self) -> bool:
        d = self.install_dir
        if d is None:
            return True
        marker = d / INSTALL_MARKER
        return (marker.is_file() and marker.read_text().strip() == self.install["sha256"]
                and self.library_path_unchecked().is_file())

    def library_path_unchecked(self) -> Path:
        return self.install_dir / self.library

    def require_installed(self) -> Path:
        """The installed folder; PdkNotInstalledError naming the install command if it is missing."""
        if self.kind != "transistor":
            raise ValueError(f"PDK '{self.name}' is behavioural: it has no model files")
        if not self.is_installed():
            raise PdkNotInstalledError(
                f"the {self.name} PDK is not installed (looked in {self.install_dir}); "
                f"run `cktflow pdk install {self.name}` (or `python -m cktflow.pdk_install {self.name}`)")
        return self.install_dir

    def library_path(self) -> Path:
        self.require_installed()
        return self.library_path_unchecked()

    def lib_line(self, corner: str | None = None) -> str:
        """The `.lib` line that loads the models of one corner."""
        corner = corner or self.default_corner
        if corner not in self.corners:
            raise ValueError(f"unknown corner '{corner}' for PDK {self.name} (known: {', '.join(self.corners)})")
        return f".lib {self.library_path()} {corner}"

    def device(self, name: str) -> DeviceKind:
        """A device kind by its short name or its SPICE model name."""
        key = name.lower()
        for d in self.devices.values():
            if key in (d.name.lower(), d.model.lower()):
                return d
        raise KeyError(f"unknown device '{name}' for PDK {self.name} (known: {', '.join(self.devices)})")

    def summary(self) -> dict:
        """A plain description (for `cktflow pdk show`)."""
        out = {"name": self.name, "kind": self.kind, "description": self.description, "file": str(self.path)}
        if self.kind == "transistor":
            out.update({"installed": self.is_installed(), "install_dir": str(self.install_dir),
                        "library": self.library, "corners": list(self.corners),
                        "default_corner": self.default_corner, "supply_v": self.supply_v,
                        "package": f"{self.install['package']}=={self.install['version']}"})
        out["devices"] = {d.name: {"model": d.model, "type": d.type, "terminals": list(d.terminals),
                                   **{k: list(v) for k, v in d.limits.items()},
                                   **({"grid_um": d.grid} if d.grid else {})} for d in self.devices.values()}
        return out


def _pair(v) -> tuple[float, float]:
    return float(v[0]), float(v[1])


@lru_cache(maxsize=None)
def load_technology(name: str) -> Technology:
    """Read pdk/<name>.yaml (the file stem; `ocb-behavioural` and `ocb_behavioural` both work)."""
    stem = name.replace("-", "_")
    path = pdk_dir() / f"{stem}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"unknown PDK '{name}' (known: {', '.join(list_technologies())})")
    data = yaml.safe_load(path.read_text())
    kind = data.get("kind", "behavioural")
    if kind == "behavioural":
        # ideal R, C and gm cells: the value range is the only limit
        terminals = {"R": ("p", "n"), "C": ("p", "n"), "gm": ("inp", "inn", "out", "ref")}
        devices = {k: DeviceKind(k, k, k, terminals.get(k, ()), {"value": _pair(v)})
                   for k, v in data["value_range"].items()}
        return Technology(name=data["name"], kind=kind, description=data.get("description", ""), path=path,
                          devices=devices, templates=data["templates"])
    if kind != "transistor":
        raise ValueError(f"{path}: unknown PDK kind '{kind}'")
    devices = {}
    for short, d in data["devices"].items():
        limits = {k: _pair(d[k]) for k in ("w", "l", "nf", "m") if k in d}
        extra = {k: v for k, v in d.items() if k not in ("model", "type", "terminals", "w", "l", "nf", "m", "grid")}
        devices[short] = DeviceKind(short, d["model"], d["type"], tuple(d["terminals"]), limits,
                                    float(d["grid"]) if d.get("grid") else None, extra)
    corners = tuple(data["corners"])
    return Technology(name=data["name"], kind=kind, description=data.get("description", ""), path=path,
                      devices=devices, templates=data["templates"], corners=corners,
                      default_corner=data.get("default_corner", corners[0]), library=data["library"],
                      simulator_settings=tuple(data.get("simulator_settings", ())),
                      scale=float(data.get("scale", 1.0)), supply_v=float(data["supply"]["nominal_v"]),
                      temperature_c=float(data.get("temperature", {}).get("nominal_c", 27.0)),
                      install=dict(data["install"]))


def list_technologies() -> list[str]:
    """The names (file stems) of every PDK description shipped in pdk/."""
    return sorted(p.stem for p in pdk_dir().glob("*.yaml"))
