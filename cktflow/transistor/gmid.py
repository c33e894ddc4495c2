"""gm/Id characterisation of a PDK transistor: sweep VGS at a grid of VDS and L, record per point
gm/Id, Id/W, fT = gm / (2 pi Cgg), intrinsic gain gm/gds and vdsat (the tables a gm/Id sizing
method looks designs up in).

One Session holds a single device (W fixed, `{l}` and `{vds}` as parameters); each (L, VDS)
is one DC sweep of the gate with the device's parameters recorded at every point, so a whole table
costs one library load plus a few milliseconds per curve. A PMOS is characterised with its source
and bulk at ground and negative gate and drain voltages; the table holds magnitudes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spice_sim.analyses import Session
from spice_sim.engine import NgSpiceEngine, get_engine

from ..technology import Technology, load_technology
from .bench import model_library

__all__ = ["GmIdTable", "characterise"]

QUANTITIES = ("id", "gm", "gds", "cgg", "vdsat", "vth")


@dataclass
class GmIdTable:
    device: str
    corner: str
    temp_c: float
    w_um: float
    l_um: np.ndarray            # (nl,)
    vds: np.ndarray             # (nvds,) magnitudes
    vgs: np.ndarray             # (nvgs,) magnitudes
    data: dict[str, np.ndarray]  # quantity -> (nl, nvds, nvgs), magnitudes

    @property
    def gm_id(self) -> np.ndarray:
        return self.data["gm"] / np.maximum(self.data["id"], 1e-30)

    @property
    def id_w(self) -> np.ndarray:
        """A per um of width."""
        return self.data["id"] / self.w_um

    @property
    def ft(self) -> np.ndarray:
        return self.data["gm"] / (2 * np.pi * np.maximum(self.data["cgg"], 1e-30))

    @property
    def gm_gds(self) -> np.ndarray:
        return self.data["gm"] / np.maximum(self.data["gds"], 1e-30)

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, device=self.device, corner=self.corner, temp_c=self.temp_c, w_um=self.w_um,
                            l_um=self.l_um, vds=self.vds, vgs=self.vgs, **self.data)

    @classmethod
    def load(cls, path: str | Path) -> "GmIdTable":
        z = np.load(path)
        return cls(str(z["device"]), str(z["corner"]), float(z["temp_c"]), float(z["w_um"]), z["l_um"], z["vds"],
                   z["vgs"], {q: z[q] for q in QUANTITIES})

    def at_gm_id(self, gm_id: float, l_um: float, vds: float) -> dict[str, float]:
        """Id/W, fT, gm/gds and vgs where gm/Id equals `gm_id` on the curve of the nearest L and
        VDS (strong-inversion side of the curve's maximum)."""
        i = int(np.argmin(abs(self.l_um - l_um)))
        j = int(np.argmin(abs(self.vds - vds)))
        g = self.gm_id[i, j]
        k0 = int(np.argmax(g))
        gs = g[k0:][::-1]                      # increasing gm/Id for np.interp
        if not gs[0] <= gm_id <= gs[-1]:
            raise ValueError(f"gm/Id {gm_id:g} is outside [{gs[0]:.3g}, {gs[-1]:.3g}] at L={self.l_um[i]:g} um, "
                             f"VDS={self.vds[j]:g} V")
        pick = lambda arr: float(np.interp(gm_id, gs, arr[i, j, k0:][::-1]))  # noqa: E731
        vgs = float(np.interp(gm_id, gs, self.vgs[k0:][::-1]))
        return {"l_um": float(self.l_um[i]), "vds": float(self.vds[j]), "vgs": vgs,
                "id_w": pick(self.id_w), "ft": pick(self.ft), "gm_gds": pick(self.gm_gds),
                "vdsat": pick(self.data["vdsat"])}


def characterise(device: str = "nfet_01v8", *, pdk: str | Technology = "sky130", corner: str | None = None,
                 temp_c: float | None = None, w_um: float = 5.0, lengths=(0.15, 0.25, 0.5, 1.0, 2.0),
                 vds=(0.1, 0.3, 0.6, 0.9, 1.2, 1.5, 1.8), vgs_step: float = 0.01, vgs_max: float | None = None,
                 engine: NgSpiceEngine | None = None) -> GmIdTable:
    tech = pdk if isinstance(pdk, Technology) else load_technology(pdk)
    dev = tech.device(device)
    if dev.type not in ("nmos", "pmos"):
        raise ValueError(f"{device} is a {dev.type}, not a transistor")
    corner = corner or tech.default_corner
    temp_c = tech.temperature_c if temp_c is None else temp_c
    vgs_max = vgs_max if vgs_max is not None else tech.supply_v
    lengths = np.array([dev.snap(float(x)) for x in lengths])
    dev.check("characterisation", w=w_um)
    for ln in lengths:
        dev.check("characterisation", l=ln)
    sign = 1.0 if dev.type == "nmos" else -1.0
    deck = (f"vd d 0 {{{sign:g}*vds}}\nvg g 0 0\n"
            f"xm1 d g 0 0 {dev.model} W={w_um:g} L={{l}} nf=1")
    vds = np.asarray(vds, dtype=float)
    n_vgs = int(round(vgs_max / vgs_step)) + 1
    vgs = np.linspace(0.0, vgs_max, n_vgs)
    data = {q: np.zeros((len(lengths), len(vds), n_vgs)) for q in QUANTITIES}
    with Session(engine or get_engine(), deck, library=model_library(tech, corner),
                 params={"l": float(lengths[0]), "vds": float(vds[0])}, device_models={dev.model},
                 title=f"gm/Id {dev.model}") as s:
        s.set_temperature(temp_c)
        names = {q: s.device_vector("xm1", q) for q in QUANTITIES}
        for i, ln in enumerate(lengths):
            for j, vd in enumerate(vds):
                s.set_params(l=float(ln), vds=float(vd))
                sw = s.dc("vg", 0.0, sign * vgs_max, sign * vgs_step, tuple(names.values()))
                if len(sw.scale) != n_vgs:
                    raise RuntimeError(f"the VGS sweep returned {len(sw.scale)} points, expected {n_vgs}")
                for q, name in names.items():
                    data[q][i, j] = np.abs(sw[name])
    return GmIdTable(dev.name, corner, float(temp_c), float(w_um), lengths, vds, vgs, data)
