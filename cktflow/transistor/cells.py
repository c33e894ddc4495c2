"""Transistor cells sized from gm/Id tables: the parts `cktflow.transistor.realize` builds an op-amp from.

A `CellBuilder` collects netlist lines whose sizes are `{param}` references and the parameters'
first values. Every size comes from the gm/Id tables of the PDK's nfet_01v8 / pfet_01v8:
- a device that sets a transconductance is placed at a chosen gm/Id and L: Id = gm / (gm/Id),
  W = Id / (Id/W), and its gate sits at the table's VGS;
- a current source sits at the gate voltage of the one bias reference (a diode fed by the ideal
  current `iref`): W = Id / (Id/W at that VGS, its L, its VDS), so its current is a ratio of iref;
- a diode-connected load is placed like a transconductor (its gm/Id sets its VSG, hence the node).
W is split into m fingers of at most W_FINGER_MAX and snapped to the PDK grid; L is snapped too.
The numbers are first sizes, to be refined by the sizer; the point is that each stage starts with
the gm and output resistance its behavioural source asked for.

Voltages handed to the tables are magnitudes (a PMOS reads like an NMOS); VSB is taken as 0 (the
tables' grid), which under-estimates the threshold of a source-coupled pair by a few tens of mV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..technology import Technology
from .gmid import GmIdTable, OutsideGridError

__all__ = ["CellBuilder", "Bias", "Sized", "W_FINGER_MAX", "N_RES_SEGMENTS", "RES_W_UM", "mim_side_um",
           "mim_capacitance", "res_segment_l_um", "RealizationError"]

#: Widest finger (um): wider devices get m > 1 (sky130 allows 100 um; 50 um keeps fingers square-ish).
W_FINGER_MAX = 50.0
#: Poly resistors are chains of this many res_high_po segments (one `{l}` parameter per resistor), so
#: that the netlist's structure does not depend on the value (the behavioural family spans 0.1-10.1
#: Mohm; one segment reaches at most ~0.97 Mohm at W 0.35 um, L 1000 um).
N_RES_SEGMENTS = 12
RES_W_UM = 0.35
# sky130_fd_pr__res_high_po at W 0.35 um (cells/res_high_po, tt): R = Rhead + Rsheet (L + 0.247) / Weff
_RES_WEFF = 0.35 - 0.001 - 0.0672 * (0.69 - 0.35)
_RES_HEAD_OHM = 345.8312 / (_RES_WEFF + 0.1558)
_RES_SHEET_OHM = 317.3885
# sky130_fd_pr__cap_mim_m3_1 (typical): C = Ca W L + Cp 2 (W + L)
_MIM_CA, _MIM_CP = 2.00e-15, 0.19e-15


class RealizationError(ValueError):
    """A behavioural circuit (or one of its subgraphs) that cannot be realised; the message names the
    stage kind and why."""


def res_segment_l_um(r_ohm: float) -> float:
    """L of each of N_RES_SEGMENTS segments (W = RES_W_UM) so that the chain has resistance r_ohm."""
    per = r_ohm / N_RES_SEGMENTS
    return (per - _RES_HEAD_OHM) * _RES_WEFF / _RES_SHEET_OHM - 0.247


def mim_capacitance(side_um: float) -> float:
    """The capacitance of a square MIM capacitor of side side_um (the inverse of mim_side_um)."""
    return _MIM_CA * side_um ** 2 + _MIM_CP * 4 * side_um


def mim_side_um(c_f: float) -> float:
    """The side of a square MIM capacitor of capacitance c_f."""
    # Ca s^2 + 4 Cp s - C = 0
    return (-4 * _MIM_CP + math.sqrt(16 * _MIM_CP ** 2 + 4 * _MIM_CA * c_f)) / (2 * _MIM_CA)


@dataclass(frozen=True)
class Sized:
    """One device's first size and the bias point the tables put it at."""
    name: str
    w_um: float          # total width (m fingers of w_um / m)
    l_um: float
    m: int
    id_a: float
    vgs: float
    gm_id: float
    gm_gds: float
    vdsat: float

    @property
    def gm(self) -> float:
        return self.gm_id * self.id_a

    @property
    def gds(self) -> float:
        return self.gm / self.gm_gds


@dataclass
class Bias:
    """The one bias reference: gate voltages of NMOS and PMOS current sources (magnitudes)."""
    iref: float
    l_um: float
    vbn: float
    vbp: float


@dataclass
class CellBuilder:
    tech: Technology
    tables: dict[str, GmIdTable]            # "n" / "p" -> the nfet / pfet table
    lines: list[str] = field(default_factory=list)
    params: dict[str, float] = field(default_factory=dict)
    bounds: dict[str, tuple[str, float, float]] = field(default_factory=dict)
    devices: dict[str, Sized] = field(default_factory=dict)

    # ---- table look-ups ------------------------------------------------------------------------
    def _range_gm_id(self, kind: str, l_um: float, vds: float) -> tuple[float, float]:
        c = self.tables[kind].curves(l_um, vds)
        g = c["gm_id"]
        k0 = int(np.argmax(g))
        k1 = k0
        while k1 + 1 < len(g) and g[k1 + 1] < g[k1]:
            k1 += 1
        return float(g[k1]), float(g[k0])

    def at_gm_id(self, kind: str, gm_id: float, l_um: float, vds: float) -> dict:
        """The table's bias point at gm/Id, clamped into what the device reaches at this L (a short
        PMOS cannot get below ~14 /V inside 1.8 V of VGS, for one)."""
        vds = min(max(vds, 0.05), 1.8)
        try:
            return self.tables[kind].at_gm_id(gm_id, l_um, vds)
        except OutsideGridError:
            lo, hi = self._range_gm_id(kind, l_um, vds)
            return self.tables[kind].at_gm_id(min(max(gm_id, lo * 1.001), hi * 0.999), l_um, vds)

    def at_vgs(self, kind: str, vgs: float, l_um: float, vds: float) -> dict:
        return self.tables[kind].lookup(min(max(vgs, 0.0), 1.8), l_um, min(max(vds, 0.05), 1.8))

    def gds_per_a(self, kind: str, gm_id: float, l_um: float, vds: float) -> float:
        """gds / Id (1/V) at gm/Id and L: the output conductance a current costs."""
        p = self.at_gm_id(kind, gm_id, l_um, vds)
        return p["gm_id"] / p["gm_gds"]

    # ---- netlist -------------------------------------------------------------------------------
    def param(self, name: str, value: float, bound: tuple[str, float, float] | None = None) -> str:
        if name in self.params:
            raise ValueError(f"parameter {name} defined twice")
        self.params[name] = float(value)
        if bound:
            self.bounds[name] = bound
        return "{" + name + "}"

    def _geometry(self, kind: str, w_total: float, l_um: float) -> tuple[float, float, int]:
        dev = self.tech.device("nfet_01v8" if kind == "n" else "pfet_01v8")
        wlo, whi = dev.limits["w"]
        llo, lhi = dev.limits["l"]
        mhi = int(dev.limits["m"][1])
        m = max(1, math.ceil(w_total / W_FINGER_MAX - 1e-9))
        if m > mhi:
            raise RealizationError(f"a device needs W = {w_total:.0f} um, beyond {mhi} fingers of {W_FINGER_MAX:g} um")
        w = min(max(dev.snap(w_total / m), wlo), whi)
        return w, min(max(dev.snap(l_um), llo), lhi), m

    def mos(self, name: str, kind: str, d: str, g: str, s: str, *, id_a: float, l_um: float, vds: float,
            gm_id: float | None = None, vgs: float | None = None, share: str | None = None) -> Sized:
        """A MOSFET carrying id_a, placed at gm/Id (a transconductor, a diode) or at a given gate
        voltage (a current source, a device whose gate level another device fixes). `share`: use the
        size parameters of that earlier device (a matched pair)."""
        bulk = "vss" if kind == "n" else "vdd"
        model = "sky130_fd_pr__nfet_01v8" if kind == "n" else "sky130_fd_pr__pfet_01v8"
        if share is not None:
            sized = self.devices[share]
            sized = Sized(name, sized.w_um, sized.l_um, sized.m, sized.id_a, sized.vgs, sized.gm_id, sized.gm_gds,
                          sized.vdsat)
            key = share
        else:
            p = self.at_gm_id(kind, gm_id, l_um, vds) if vgs is None else self.at_vgs(kind, vgs, l_um, vds)
            w, l, m = self._geometry(kind, id_a / p["id_w"], l_um)
            # the snapped geometry moves the current density a little; the bias point stays the table's
            sized = Sized(name, w * m, l, m, id_a, p["vgs"], p["gm_id"], p["gm_gds"], p["vdsat"])
            key = name
            self.param(f"w_{name}", w)
            self.param(f"l_{name}", l)
            self.param(f"m_{name}", m)
        self.devices[name] = sized
        self.lines.append(f"xm{name} {d} {g} {s} {bulk} {model} W={{w_{key}}} L={{l_{key}}} nf=1 m={{m_{key}}}")
        return sized

    def resistor(self, name: str, a: str, b: str, r_ohm: float) -> None:
        lseg = res_segment_l_um(r_ohm)
        dev = self.tech.device("res_high_po")
        llo, lhi = dev.limits["l"]
        if not llo <= lseg <= lhi:
            raise RealizationError(f"R = {r_ohm:.4g} ohm needs {N_RES_SEGMENTS} poly segments of L = {lseg:.4g} um, "
                                   f"outside res_high_po's [{llo:g}, {lhi:g}] um")
        ref = self.param(f"l_{name}", dev.snap(lseg))
        nodes = [a] + [f"{name}_{k}" for k in range(1, N_RES_SEGMENTS)] + [b]
        for k in range(N_RES_SEGMENTS):
            self.lines.append(f"x{name}_{k} {nodes[k]} {nodes[k + 1]} vss sky130_fd_pr__res_high_po "
                              f"W={RES_W_UM:g} L={ref}")

    def capacitor(self, name: str, a: str, b: str, c_f: float) -> None:
        dev = self.tech.device("cap_mim")
        lo, hi = dev.limits["w"]
        # a capacitor larger than one MIM of the largest side is an array of equal squares in
        # parallel, as a layout would draw it (one size parameter pair for all of them)
        units = max(1, math.ceil(c_f / mim_capacitance(hi)))
        side = mim_side_um(c_f / units)
        if units > dev.limits.get("m", (1, 1))[1] or not lo <= side <= hi:
            raise RealizationError(f"C = {c_f:.4g} F needs {units} square MIM capacitor(s) of {side:.3g} um, "
                                   f"outside cap_mim_m3_1's [{lo:g}, {hi:g}] um x {dev.limits.get('m', (1, 1))[1]:g}")
        side = dev.snap(side)
        w, l_ = self.param(f"w_{name}", side), self.param(f"l_{name}", side)
        # top plate (c0) on a, bottom plate (c1) on b
        for k in range(units):
            unit = f"x{name}" if units == 1 else f"x{name}_{k}"
            self.lines.append(f"{unit} {a} {b} sky130_fd_pr__cap_mim_m3_1 W={w} L={l_}")

    # ---- the bias reference --------------------------------------------------------------------
    def bias(self, iref: float, *, gm_id: float = 10.0, l_um: float = 1.0) -> Bias:
        """The one reference: ideal iref into an NMOS diode (vbn); an NMOS mirror of it pulls iref out
        of a PMOS diode (vbp). Both diodes at gm/Id `gm_id`, length l_um."""
        self.lines.append(f"ib vdd vbn {self.param('iref', iref, ('A', iref / 10, iref * 10))}")
        vgs = 0.7
        for _ in range(3):                      # a diode: VDS = VGS
            vgs = self.at_gm_id("n", gm_id, l_um, vgs)["vgs"]
        dn = self.mos("bn", "n", "vbn", "vbn", "vss", id_a=iref, l_um=l_um, vds=vgs, gm_id=gm_id)
        self.mos("bn2", "n", "vbp", "vbn", "vss", id_a=iref, l_um=l_um, vds=0.7, share="bn")
        vsg = 1.0
        for _ in range(3):
            vsg = self.at_gm_id("p", gm_id, l_um, vsg)["vgs"]
        dp = self.mos("bp", "p", "vbp", "vbp", "vdd", id_a=iref, l_um=l_um, vds=vsg, gm_id=gm_id)
        return Bias(iref, l_um, dn.vgs, dp.vgs)

    def sink(self, name: str, bias: Bias, d: str, *, id_a: float, vds: float, l_um: float | None = None) -> Sized:
        """An NMOS current source (to vss) mirrored from the reference."""
        return self.mos(name, "n", d, "vbn", "vss", id_a=id_a, l_um=l_um or bias.l_um, vds=vds, vgs=bias.vbn)

    def source(self, name: str, bias: Bias, d: str, *, id_a: float, vds: float, l_um: float | None = None) -> Sized:
        """A PMOS current source (from vdd) mirrored from the reference."""
        return self.mos(name, "p", d, "vbp", "vdd", id_a=id_a, l_um=l_um or bias.l_um, vds=vds, vgs=bias.vbp)

    def diode_bias(self, name: str, kind: str, bias: Bias, node: str, vgs: float, *, l_um: float = 1.0) -> None:
        """A diode-connected device carrying iref (fed by a mirror branch of the reference) whose gate
        sits at `vgs` (magnitude): a cascode's gate voltage."""
        if kind == "p":
            self.mos(name + "f", "n", node, "vbn", "vss", id_a=bias.iref, l_um=bias.l_um, vds=1.8 - vgs, share="bn")
            self.mos(name, "p", node, node, "vdd", id_a=bias.iref, l_um=l_um, vds=vgs, vgs=vgs)
        else:
            self.mos(name + "f", "p", node, "vbp", "vdd", id_a=bias.iref, l_um=bias.l_um, vds=1.8 - vgs, share="bp")
            self.mos(name, "n", node, node, "vss", id_a=bias.iref, l_um=l_um, vds=vgs, vgs=vgs)
