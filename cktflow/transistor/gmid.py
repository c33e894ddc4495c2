"""gm/Id tables of a PDK transistor and the look-ups a gm/Id sizing method makes in them.

A table holds, per grid point (L, VSB, VDS, VGS; voltages as magnitudes, so a PMOS reads like an
NMOS), the device's id, gm, gds, gmbs, cgg, vdsat and vth from ngspice, and derives the design
quantities from them: gm/Id, Id/W (A/um), fT = gm / (2 pi Cgg), intrinsic gain gm/gds, Cgg/W
(F/um) and vdsat. `cktflow.transistor.characterize` fills tables (resumably, on the Ray pool) and
keeps them in the cktflow cache; `GmIdTable.load` reads one back from a file or from that cache.

Interpolation: multilinear over L (in log L: the quantities go roughly with 1/L, and log L spaces
the usual grids evenly), VSB and VDS, then linear over VGS, of gm/Id, vdsat and vth and of the
logarithms of the quantities that span decades (Id/W, fT, gm/gds, Cgg/W). A point outside the grid
is an error naming the axis and the range, never an extrapolation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..cache import cache_dir
from ..technology import Technology, load_technology

__all__ = ["Grid", "GmIdTable", "OutsideGridError", "QUANTITIES", "DESIGN_QUANTITIES", "table_dir", "table_path",
           "tables_root", "resolve_device"]

#: What ngspice reports per point (magnitudes), stored in every table.
QUANTITIES = ("id", "gm", "gds", "gmbs", "cgg", "vdsat", "vth")
#: What a look-up returns besides the bias point.
DESIGN_QUANTITIES = ("gm_id", "id_w", "ft", "gm_gds", "cgg_w", "vdsat", "vth")
_LOG = {"id_w", "ft", "gm_gds", "cgg_w"}          # interpolated in log: they span decades
_TINY = 1e-300


class OutsideGridError(ValueError):
    """A look-up outside the characterised grid (or gm/Id beyond what the device reaches)."""


@dataclass(frozen=True)
class Grid:
    """The characterisation grid: lengths (um), VGS and VDS as (start, stop, points) magnitudes,
    VSB values and the width W (um) every point is simulated at."""
    lengths: tuple[float, ...] = (0.15, 0.18, 0.25, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
    vgs: tuple[float, float, int] = (0.0, 1.8, 73)
    vds: tuple[float, float, int] = (0.05, 1.8, 36)
    vsb: tuple[float, ...] = (0.0,)
    w_um: float = 5.0

    def __post_init__(self):
        norm = lambda xs: tuple(sorted({round(float(x), 9) for x in xs}))  # noqa: E731
        object.__setattr__(self, "lengths", norm(self.lengths))
        object.__setattr__(self, "vsb", norm(self.vsb))
        for name in ("vgs", "vds"):
            a, b, n = getattr(self, name)
            if int(n) < 2 or not 0 <= float(a) < float(b):
                raise ValueError(f"{name} sweep {a}:{b}:{n} needs 0 <= start < stop and at least 2 points")
            object.__setattr__(self, name, (float(a), float(b), int(n)))
        if not self.lengths or min(self.lengths) <= 0 or min(self.vsb) < 0 or self.w_um <= 0:
            raise ValueError("a grid needs positive lengths and W, and VSB >= 0")

    @property
    def vgs_values(self) -> np.ndarray:
        return np.linspace(*self.vgs)

    @property
    def vds_values(self) -> np.ndarray:
        return np.linspace(*self.vds)

    @property
    def points(self) -> int:
        return len(self.lengths) * len(self.vsb) * self.vgs[2] * self.vds[2]

    def with_lengths(self, lengths) -> "Grid":
        return Grid(tuple(lengths), self.vgs, self.vds, self.vsb, self.w_um)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Grid":
        return cls(tuple(d["lengths"]), tuple(d["vgs"]), tuple(d["vds"]), tuple(d["vsb"]), float(d["w_um"]))

    def key(self) -> str:
        """A short hash naming this grid in the cache."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class GmIdTable:
    pdk: str
    device: str
    corner: str
    temp_c: float
    grid: Grid
    data: dict[str, np.ndarray]      # quantity -> (L, VSB, VDS, VGS), magnitudes

    # -- the design quantities over the whole grid --------------------------------------------
    @property
    def gm_id(self) -> np.ndarray:
        return self.data["gm"] / np.maximum(self.data["id"], _TINY)

    @property
    def id_w(self) -> np.ndarray:
        """A per um of width."""
        return self.data["id"] / self.grid.w_um

    @property
    def ft(self) -> np.ndarray:
        return self.data["gm"] / (2 * np.pi * np.maximum(self.data["cgg"], _TINY))

    @property
    def gm_gds(self) -> np.ndarray:
        return self.data["gm"] / np.maximum(self.data["gds"], _TINY)

    @property
    def cgg_w(self) -> np.ndarray:
        """F per um of width."""
        return self.data["cgg"] / self.grid.w_um

    def quantity(self, name: str) -> np.ndarray:
        if name in ("vdsat", "vth"):
            return self.data[name]
        if name not in DESIGN_QUANTITIES:
            raise KeyError(f"unknown quantity '{name}' (known: {', '.join(DESIGN_QUANTITIES)})")
        return getattr(self, name)

    # -- files ---------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """An .npz file, written atomically."""
        from ..fsutil import atomic_path
        meta = json.dumps({"pdk": self.pdk, "device": self.device, "corner": self.corner, "temp_c": self.temp_c,
                           "grid": self.grid.to_dict()})
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, meta=np.array(meta), **self.data)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path | None = None, *, device: str | None = None, pdk: str = "sky130",
             corner: str | None = None, temp_c: float | None = None, grid: Grid | None = None,
             root: Path | None = None) -> "GmIdTable":
        """A table from an .npz file, or (without `path`) the cached table of `device` at this
        corner, temperature and grid (default grid: `Grid()`), as `cktflow pdk characterize` left it
        (`root`: the tables' folder, default <cktflow cache>/gmid)."""
        if path is None:
            if device is None:
                raise ValueError("GmIdTable.load needs a path or a device")
            path = table_path(device, pdk=pdk, corner=corner, temp_c=temp_c, grid=grid or Grid(), root=root)
            if not path.is_file():
                raise FileNotFoundError(f"no cached gm/Id table for {device} ({path}); run `cktflow pdk characterize "
                                        f"{pdk} --devices {device}` with the same grid first")
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            data = {q: z[q] for q in QUANTITIES}
        return cls(meta["pdk"], meta["device"], meta["corner"], float(meta["temp_c"]), Grid.from_dict(meta["grid"]),
                   data)

    # -- look-ups ------------------------------------------------------------------------------
    def curves(self, l_um: float, vds: float, vsb: float = 0.0) -> dict[str, np.ndarray]:
        """Every design quantity over the VGS grid at (L, VDS, VSB), interpolated between grid
        points (see the module docstring)."""
        g = self.grid
        axes = (_weights(np.log(g.lengths), float(np.log(l_um)), "L", l_um, g.lengths, "um"),
                _weights(np.array(g.vsb), vsb, "VSB", vsb, g.vsb, "V"),
                _weights(g.vds_values, vds, "VDS", vds, g.vds_values, "V"))
        out = {}
        for name in DESIGN_QUANTITIES:
            q = self.quantity(name)
            q = np.log(np.maximum(q, _TINY)) if name in _LOG else q
            acc = np.zeros(g.vgs[2])
            for i, wi in axes[0]:
                for j, wj in axes[1]:
                    for k, wk in axes[2]:
                        acc += wi * wj * wk * q[i, j, k]
            out[name] = np.exp(acc) if name in _LOG else acc
        return out

    def lookup(self, vgs: float, l_um: float, vds: float, vsb: float = 0.0) -> dict[str, float]:
        """The design quantities at one bias point (VGS, VDS, VSB as magnitudes, L in um)."""
        v = self.grid.vgs_values
        _weights(v, vgs, "VGS", vgs, v, "V")           # the range check
        c = self.curves(l_um, vds, vsb)
        return {"vgs": float(vgs), "l_um": float(l_um), "vds": float(vds), "vsb": float(vsb),
                **{n: _interp(vgs, v, c[n], n in _LOG) for n in DESIGN_QUANTITIES}}

    def at_gm_id(self, gm_id: float, l_um: float, vds: float, vsb: float = 0.0) -> dict[str, float]:
        """The bias point where gm/Id equals `gm_id` at (L, VDS, VSB): VGS, Id/W, fT, gm/gds,
        Cgg/W, vdsat, vth. gm/Id peaks in weak inversion and falls with VGS after it; the point is
        taken on that falling (moderate/strong-inversion) side, where a gm/Id value names one VGS."""
        c = self.curves(l_um, vds, vsb)
        g, v = c["gm_id"], self.grid.vgs_values
        k0 = int(np.argmax(g))
        k1 = k0
        while k1 + 1 < len(g) and g[k1 + 1] < g[k1]:
            k1 += 1
        lo, hi = float(g[k1]), float(g[k0])
        if not lo <= gm_id <= hi:
            why = ("above the peak (weak-inversion limit)" if gm_id > hi else
                   "below what the grid's largest VGS reaches")
            raise OutsideGridError(f"gm/Id {gm_id:g} /V is {why}: [{lo:.4g}, {hi:.4g}] /V at L={l_um:g} um, "
                                   f"VDS={vds:g} V, VSB={vsb:g} V")
        vgs = float(np.interp(gm_id, g[k0:k1 + 1][::-1], v[k0:k1 + 1][::-1]))
        return {"vgs": vgs, "l_um": float(l_um), "vds": float(vds), "vsb": float(vsb),
                **{n: _interp(vgs, v, c[n], n in _LOG) for n in DESIGN_QUANTITIES if n != "gm_id"},
                "gm_id": float(gm_id)}


# -- where tables are cached ---------------------------------------------------------------------

def resolve_device(device: str, pdk: str | Technology, corner: str | None, temp_c: float | None):
    """(technology, device kind, corner, temperature) with the PDK's defaults filled in; a ValueError
    for a device that is not a transistor or an unknown corner, a KeyError for an unknown device."""
    tech = pdk if isinstance(pdk, Technology) else load_technology(pdk)
    dev = tech.device(device)
    if dev.type not in ("nmos", "pmos"):
        raise ValueError(f"{dev.name} is a {dev.type}, not a transistor")
    corner = corner or tech.default_corner
    if corner not in tech.corners:
        raise ValueError(f"unknown corner '{corner}' for PDK {tech.name} (known: {', '.join(tech.corners)})")
    return tech, dev, corner, float(tech.temperature_c if temp_c is None else temp_c)


def tables_root() -> Path:
    """Where the gm/Id tables live by default."""
    return cache_dir() / "gmid"


def table_dir(device: str, *, pdk: str | Technology = "sky130", corner: str | None = None,
              temp_c: float | None = None, grid: Grid = Grid(), root: Path | None = None) -> Path:
    """The cache folder of one table: keyed by PDK and its version, device, corner, temperature, grid.
    `root`: where the tables live (default <cktflow cache>/gmid)."""
    tech, dev, corner, temp_c = resolve_device(device, pdk, corner, temp_c)
    version = (tech.install or {}).get("version", "0")
    root = Path(root) if root is not None else tables_root()
    return root / f"{tech.name}-{version}" / dev.name / f"{corner}_{temp_c:g}C_{grid.key()}"


def table_path(device: str, **kwargs) -> Path:
    return table_dir(device, **kwargs) / "table.npz"


def _weights(axis: np.ndarray, x: float, name: str, shown: float, values, unit: str) -> list[tuple[int, float]]:
    """The grid indices around x on a sorted axis and their linear weights; an error outside it."""
    axis = np.asarray(axis, dtype=float)
    span = axis[-1] - axis[0]
    tol = 1e-9 * max(abs(span), 1.0)
    if not axis[0] - tol <= x <= axis[-1] + tol:
        raise OutsideGridError(f"{name}={shown:g} {unit} is outside the table's grid "
                               f"[{float(np.min(values)):g}, {float(np.max(values)):g}] {unit}")
    if len(axis) == 1:
        return [(0, 1.0)]
    k = int(np.clip(np.searchsorted(axis, x, side="right") - 1, 0, len(axis) - 2))
    t = float(np.clip((x - axis[k]) / (axis[k + 1] - axis[k]), 0.0, 1.0))
    return [(k, 1.0 - t), (k + 1, t)] if t > 0 else [(k, 1.0)]


def _interp(x: float, xs: np.ndarray, ys: np.ndarray, log: bool) -> float:
    if log:
        return float(np.exp(np.interp(x, xs, np.log(np.maximum(ys, _TINY)))))
    return float(np.interp(x, xs, ys))
