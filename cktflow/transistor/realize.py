"""From a behavioural topology (the OCB family of cktflow.circuit) to a sized transistor op-amp.

`realize(circuit)` maps every subgraph of a behavioural Circuit onto sky130 cells and returns a
`Realization`: the `TransistorCircuit` (netlist text with `{param}` sizes and `*@ param` bounds,
read back through `read_subckt`, so it is vetted like any user netlist), which transistor cell
stands for which behavioural node, and notes on everything that is approximated.

The mapping (shared/design/ocb-generator.md sections 1 and 4 for the behavioural conventions):
- S1 (first main stage): an NMOS differential pair with a PMOS current-mirror load (5T), or a
  folded cascode when the 5T cannot reach the stage's output resistance (its R0 = 1 Mohm) within a
  factor FOLDED_CASCODE_SHORTFALL at any L up to `max_l_um`. A differential pair gives either sign,
  so S1 also fixes the overall sign: the testbench's DC servo needs out/inp > 0 at DC, so the
  behavioural input is realised as inp when the behavioural DC gain is positive, else as inn.
- S2, S3: a positive behavioural gm (current gm*V(A) out of B: inverting) is an NMOS common source
  with a PMOS current-source load; a negative one (non-inverting) is an NMOS common source into a
  PMOS mirror whose output meets an NMOS current sink ("mirrored stage").
- Side gm (feedforward and feedback; feedback swaps the pins: it senses the later net and drives
  the earlier one): a small transconductor cell. Sensing the input, a differential 5T cell (either
  sign); sensing an internal node or the output, an NMOS common source with a PMOS source (inverting)
  or the mirrored cell (non-inverting). A feedback gm that drives the input is inert in the
  behavioural testbench (the ideal source holds the input) and is not realised (noted).
- R: a chain of N_RES_SEGMENTS sky130_fd_pr__res_high_po segments (W 0.35 um); C: a square
  sky130_fd_pr__cap_mim_m3_1 (the only poly resistor and MIM kinds pdk/sky130.yaml registers).
- One bias reference: an ideal current `iref` into an NMOS diode, mirrored to a PMOS diode; every
  tail, sink and source is a mirror of them (their currents are ratios of iref, set by W).
A behavioural gm cell's R0 (1 Mohm) and C0 (50 fF) are not built: each stage's own output
resistance (its devices' gds, L chosen from the gm/Id tables to approach R0) and its parasitics
replace them.

First sizes (cktflow.transistor.cells): gm/Id GM_ID_SIGNAL for every device that sets a gm, Id =
gm / (gm/Id), L the length (between the PDK's minimum and `max_l_um`) whose estimated output
resistance comes closest to the behavioural R0, W = Id / (Id/W). DC levels follow from the plan:
each internal node sits at the VGS of the NMOS that reads it, the output at the common mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..circuit.basis import Connection
from ..circuit.ir import Circuit
from ..circuit.pdk import load_pdk
from ..circuit.validity import Structure, analyse
from ..technology import load_technology
from .bench import Conditions
from .cells import CellBuilder, RealizationError
from .circuit import TransistorCircuit, read_subckt, spice_value
from .gmid import GmIdTable

__all__ = ["realize", "Realization", "StageRealization", "RealizationError", "REALIZATION_CONDITIONS",
           "GM_ID_SIGNAL", "MAX_L_UM", "FOLDED_CASCODE_SHORTFALL", "STAGE_KINDS"]

#: Where a realisation is measured: vdd 1.8 V, vcm 1.1 V, tt 27 C, CL 50 fF. The behavioural testbench
#: has no load beyond the gm cells' C0 (50 fF at each stage output): the load is one C0.
REALIZATION_CONDITIONS = Conditions(vcm=1.1, cl=50e-15)
#: gm/Id (1/V) of every device that sets a transconductance: moderate inversion.
GM_ID_SIGNAL = 12.0
#: gm/Id of diode-connected mirror loads and of the bias reference (a little stronger: matching, VSG).
GM_ID_LOAD = 10.0
#: The longest L a stage may take for output resistance. sky130's nfet gm/gds rises only from 139 to
#: 264 between L 1 and 4 um (gm/Id 12) while fT falls from 1 GHz to 68 MHz, so beyond ~1 um a stage
#: trades a little gain for most of its speed; the behavioural family is fast (median UGF ~1 GHz).
MAX_L_UM = 1.0
MIN_L_UM = 0.15
#: S1 becomes a folded cascode when the 5T's best output resistance is below R0 by more than this.
FOLDED_CASCODE_SHORTFALL = 2.0
#: The cells a subgraph can become (StageRealization.kind).
STAGE_KINDS = ("diff pair + mirror load", "folded cascode", "common source", "mirrored common source",
               "diff transconductor", "transconductor", "mirrored transconductor", "inert feedback gm",
               "poly resistor", "MIM capacitor", "poly resistor + MIM capacitor")
_ROLE = {2: "S1", 3: "S2", 4: "S3", 5: "branch A", 6: "passive P", 7: "branch B"}
_MAIN_STAGE_TYPES = (6, 7, 10, 11)


@dataclass(frozen=True)
class StageRealization:
    """What one behavioural subgraph became."""
    node: int                    # index of the behavioural node
    role: str                    # S1, S2, S3, branch A, passive P, branch B
    type_name: str               # the behavioural subgraph kind, e.g. "C||-gm+"
    kind: str                    # the transistor cell (one of STAGE_KINDS) of its gm; "" when it has none
    sense: str = ""              # the transistor net its gm senses
    drive: str = ""              # the transistor net its gm drives
    devices: tuple[str, ...] = ()   # instance names in the netlist
    gm: float = 0.0              # behavioural |gm| (S)
    id_a: float = 0.0            # the cell's signal-device current
    l_um: float = 0.0
    rout_target: float = 0.0     # behavioural R0 (ohm)
    rout_est: float = 0.0        # estimated from the gm/Id tables

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Realization:
    circuit: TransistorCircuit
    source: Circuit
    stages: tuple[StageRealization, ...]
    nets: dict                   # behavioural net (in, n1, n2, out, x<i>) -> transistor net
    inverting: bool              # the behavioural DC gain is negative: its input is realised as inn
    conditions: Conditions
    notes: tuple[str, ...] = ()

    @property
    def s1_kind(self) -> str:
        return next(s.kind for s in self.stages if s.role == "S1")


@lru_cache(maxsize=4)
def _tables(pdk: str) -> dict[str, GmIdTable]:
    return {"n": GmIdTable.load(device="nfet_01v8", pdk=pdk), "p": GmIdTable.load(device="pfet_01v8", pdk=pdk)}


def realize(circuit: Circuit, *, pdk: str = "sky130", conditions: Conditions | None = None,
            gmid: dict[str, GmIdTable] | None = None, max_l_um: float = MAX_L_UM, iref: float = 10e-6,
            name: str | None = None) -> Realization:
    """The transistor realisation of a behavioural circuit, at first sizes from the gm/Id tables.

    `conditions`: where it will be measured (vcm sets the DC plan; default REALIZATION_CONDITIONS).
    `gmid`: {"n": nfet table, "p": pfet table} (default: the cached tt 27 C tables).
    RealizationError (a ValueError) names the subgraph kind that cannot be realised and why."""
    tech = load_technology(pdk)
    if tech.kind != "transistor" or pdk != "sky130":
        raise RealizationError(f"realisation is defined for sky130 only, not {pdk}")
    s = _structure(circuit)
    if s.problems:
        raise RealizationError("not a valid behavioural circuit: " + "; ".join(s.problems))
    for i in s.stages:
        t = circuit.nodes[i].kind
        if t.id not in _MAIN_STAGE_TYPES:
            raise RealizationError(
                f"main-path stage kind {t.name} (type {t.id}) at {_ROLE[circuit.nodes[i].pos]} cannot be realised: "
                "a resistor across a gain stage ties its output's DC level to its input's, which the bias plan "
                "(each node at the VGS of the device that reads it) cannot hold; the family's stages are gm "
                "and C||gm (types 6, 7, 10, 11)")
    cond = (conditions or REALIZATION_CONDITIONS).resolved(tech)
    r0 = load_pdk().r0
    plan = _Plan(circuit, s, CellBuilder(tech, gmid or _tables(pdk)), cond, r0, max_l_um)
    plan.build(iref)
    name = name or f"rz_{circuit.topology_hash()[:10]}"
    text = plan.text(name)
    tc = read_subckt(text, source=f"realisation of {name}", pdk=pdk, name=name)
    return Realization(tc, circuit, tuple(plan.stages), dict(plan.net), plan.sigma < 0,
                       cond, tuple(plan.notes))


def _structure(c: Circuit):
    """cktflow.circuit.analyse's view of the circuit; a single stage In -> S1 -> Out with nothing
    else (outside the two- and three-stage family, but what a 5T OTA is) is accepted here too."""
    s = analyse(c, load_pdk())
    if s.problems and len(c.nodes) == 3:
        ends = {n.type: i for i, n in enumerate(c.nodes)}
        st = next((i for i, n in enumerate(c.nodes) if n.pos == 2), None)
        if st is not None and 0 in ends and 1 in ends and set(c.edges) == {(ends[0], st), (st, ends[1])}:
            lone = Structure(input=ends[0], output=ends[1], stages=[st],
                             nets={ends[0]: "in", ends[1]: "out", st: "out"})
            lone.problems = [p for p in s.problems if "main path needs stages" not in p]
            return lone
    return s


def dc_gain(circuit: Circuit, s) -> float:
    """The behavioural circuit's DC gain V(out)/V(in) (nodal analysis with every C open)."""
    nets = sorted({n for n in s.nets.values() if n != "in"})
    idx = {n: k for k, n in enumerate(nets)}
    g = np.zeros((len(nets), len(nets)))
    rhs = np.zeros(len(nets))
    r0 = load_pdk().r0

    def stamp(a, b, y):           # conductance y between nets a and b ("in" is the 1 V source)
        for p, q in ((a, b), (b, a)):
            if p in idx:
                g[idx[p], idx[p]] += y
                if q in idx:
                    g[idx[p], idx[q]] -= y
                elif q == "in":
                    rhs[idx[p]] += y

    stage_in = {st: s.nets[([s.input] + s.stages)[k]] for k, st in enumerate(s.stages)}
    for i, node in enumerate(circuit.nodes):
        kind = node.kind
        if not kind.devices:
            continue
        a, b = _pins(circuit, s, i, stage_in)
        if "R" in node.values and kind.connection != Connection.SERIES:
            stamp(a, b, 1.0 / node.values["R"])
        if kind.has_gm and b != "in":
            gm = kind.gm_sign * node.values["gm"]        # current gm*V(a) leaves b
            if a == "in":
                rhs[idx[b]] -= gm
            else:
                g[idx[b], idx[a]] += gm
            stamp(b, "0", 1.0 / r0)
    g += np.eye(len(nets)) * 1e-15                       # gmin: a net with no DC path floats at 0
    return float(np.linalg.solve(g, rhs)[idx["out"]])


def _pins(c: Circuit, s, i: int, stage_in: dict) -> tuple[str, str]:
    """Behavioural nets (A, B) of node i's devices, as cktflow.circuit.realize wires them."""
    if i in stage_in:
        return stage_in[i], s.nets[i]
    a, b = s.nets[c.predecessors(i)[0]], s.nets[c.successors(i)[0]]
    return (b, a) if c.nodes[i].kind.feedback else (a, b)


@dataclass
class _Plan:
    c: Circuit
    s: object
    cb: CellBuilder
    cond: Conditions
    r0: float
    max_l_um: float
    stages: list[StageRealization] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    net: dict[str, str] = field(default_factory=dict)
    vdc: dict[str, float] = field(default_factory=dict)    # planned DC level of each transistor net
    sigma: int = 1
    bias: object = None                                    # the reference (cells.Bias), set by build

    # ---- lengths for output resistance ---------------------------------------------------------
    def _lengths(self) -> list[float]:
        hi = max(self.max_l_um, MIN_L_UM)
        return sorted({round(x, 3) for x in np.geomspace(MIN_L_UM, hi, 9)})

    def _best_length(self, rout_of_l, target: float) -> tuple[float, float]:
        """(L, estimated Rout) whose Rout comes closest to target in log."""
        best = None
        for L in self._lengths():
            r = rout_of_l(L)
            key = abs(math.log(r / target))
            if best is None or key < best[0]:
                best = (key, L, r)
        return best[1], best[2]

    def _gds_src(self, kind: str, vgs: float, L: float, vds: float, id_a: float) -> float:
        p = self.cb.at_vgs(kind, vgs, L, vds)
        return id_a * p["gm_id"] / p["gm_gds"]

    # ---- the whole circuit ---------------------------------------------------------------------
    def build(self, iref: float) -> None:
        c, s, cb, cond = self.c, self.s, self.cb, self.cond
        h0 = dc_gain(c, s)
        self.sigma = 1 if h0 >= 0 else -1
        vin_net = "inp" if self.sigma > 0 else "inn"
        self.net = {"in": vin_net, "out": "out"}
        for k in range(1, len(s.stages)):
            self.net[f"n{k}"] = f"n{k}"
        if self.sigma < 0:
            self.notes.append(f"the behavioural DC gain is negative ({h0:.3g}): its input is realised as the "
                              "inverting input inn; out/inp then has the same magnitude and phase margin")
        bias = cb.bias(iref, gm_id=GM_ID_LOAD)
        self.bias = bias
        self.vdc = {"inp": cond.vcm, "inn": cond.vcm, "out": cond.vcm}
        stage_in = {st: s.nets[([s.input] + s.stages)[k]] for k, st in enumerate(s.stages)}
        # main stages from the last backwards: a stage's driver fixes the DC level of its input net
        for i in reversed(s.stages):
            self._main_stage(i, stage_in)
        for i, node in enumerate(c.nodes):
            if node.kind.devices and i not in stage_in:
                self._branch(i, stage_in)
        for i, node in enumerate(c.nodes):
            self._passives(i, stage_in)

    def text(self, name: str) -> str:
        cb = self.cb
        head = [f"* {name}: transistor realisation (cktflow.transistor.realize) of the behavioural circuit",
                f"* {self.c.topology_hash()} on sky130; first sizes from the gm/Id tables (tt 27 C)"]
        # the common mode and load the DC plan was made for: what the circuit is measured at by default
        head.append(f"*@ conditions vcm={spice_value(self.cond.vcm)} cl={spice_value(self.cond.cl)}")
        head += [f"*@ param {k} unit={u} min={spice_value(lo)} max={spice_value(hi)}"
                 for k, (u, lo, hi) in sorted(cb.bounds.items())]
        params = [f".param {k}={spice_value(v)}" for k, v in cb.params.items()]
        return "\n".join(head + params + [f".subckt {name} inp inn out vdd vss", *cb.lines, f".ends {name}", ""])

    # ---- main path -----------------------------------------------------------------------------
    def _main_stage(self, i: int, stage_in: dict) -> None:
        node = self.c.nodes[i]
        kind = node.kind
        role = _ROLE[node.pos]
        a_beh, b_beh = stage_in[i], self.s.nets[i]
        a, b = self.net[a_beh], self.net[b_beh]
        gm = node.values["gm"]
        tag = f"s{role[1]}"
        vout = self.vdc[b]
        if role == "S1":
            # current into b = -sign*gm*v(in) = -sign*sigma*gm*v(inp): the 5T / folded cascode give
            # +gm*v(X) for X on the mirror's diode side
            diode_gate = "inp" if -kind.gm_sign * self.sigma > 0 else "inn"
            other = "inn" if diode_gate == "inp" else "inp"
            cell = self._five_t(tag, diode_gate, other, b, gm, vout, probe=True)
            if cell[1] < self.r0 / FOLDED_CASCODE_SHORTFALL:
                st = self._folded_cascode(tag, diode_gate, other, b, gm, vout, role, kind.name, i)
            else:
                st = self._five_t(tag, diode_gate, other, b, gm, vout, role=role, type_name=kind.name, node=i)
        elif kind.gm_sign > 0:
            st = self._common_source(tag, a, b, gm, vout, role, kind.name, i)
        else:
            st = self._mirrored(tag, a, b, gm, vout, role, kind.name, i)
        self.stages.append(st)

    def _rout_cs(self, gm: float, L: float, vout: float) -> float:
        id_a = gm / GM_ID_SIGNAL
        gds_n = id_a * self.cb.gds_per_a("n", GM_ID_SIGNAL, L, vout)
        return 1.0 / (gds_n + self._gds_src("p", self.bias.vbp, L, 1.8 - vout, id_a))

    def _common_source(self, tag, a, b, gm, vout, role, type_name, i) -> StageRealization:
        cb = self.cb
        L, rout = self._best_length(lambda L: self._rout_cs(gm, L, vout), self.r0)
        id_a = gm / GM_ID_SIGNAL
        drv = cb.mos(f"{tag}", "n", b, a, "vss", id_a=id_a, l_um=L, vds=vout, gm_id=GM_ID_SIGNAL)
        cb.source(f"{tag}l", self.bias, b, id_a=id_a, vds=1.8 - vout, l_um=L)
        self.vdc[a] = drv.vgs
        return StageRealization(i, role, type_name, "common source", a, b, (f"xm{tag}", f"xm{tag}l"), gm, id_a, L,
                                self.r0, rout)

    def _mirrored(self, tag, a, b, gm, vout, role, type_name, i, kind="mirrored common source") -> StageRealization:
        """NMOS common source into a PMOS diode, mirrored 1:1 into b against an NMOS sink: the
        current into b is +gm*v(a) (non-inverting). When net a's DC level is fixed elsewhere (a side
        cell reading a stage's net), the driver's gm/Id follows from that VGS and its current from gm."""
        cb = self.cb
        fixed = self.vdc.get(a) if a not in ("inp", "inn") else None

        def current(L):
            return gm / (GM_ID_SIGNAL if fixed is None else cb.at_vgs("n", fixed, L, 0.7)["gm_id"])

        def rout(L):
            id_a = current(L)
            gds_p = id_a * cb.gds_per_a("p", GM_ID_LOAD, L, 1.8 - vout)
            return 1.0 / (gds_p + self._gds_src("n", self.bias.vbn, L, vout, id_a))

        L, r = self._best_length(rout, self.r0)
        id_a = current(L)
        d = f"d{tag}"
        dio = cb.mos(f"{tag}d", "p", d, d, "vdd", id_a=id_a, l_um=L, vds=1.1, gm_id=GM_ID_LOAD)
        if fixed is None:
            drv = cb.mos(f"{tag}", "n", d, a, "vss", id_a=id_a, l_um=L, vds=1.8 - dio.vgs, gm_id=GM_ID_SIGNAL)
            self.vdc[a] = drv.vgs
        else:
            cb.mos(f"{tag}", "n", d, a, "vss", id_a=id_a, l_um=L, vds=1.8 - dio.vgs, vgs=fixed)
        cb.mos(f"{tag}o", "p", b, d, "vdd", id_a=id_a, l_um=L, vds=1.8 - vout, share=f"{tag}d")
        cb.sink(f"{tag}k", self.bias, b, id_a=id_a, vds=vout, l_um=L)
        return StageRealization(i, role, type_name, kind, a, b, tuple(f"xm{tag}{x}" for x in ("", "d", "o", "k")),
                                gm, id_a, L, self.r0, r)

    def _rout_5t(self, gm: float, L: float, vout: float) -> float:
        id_a = gm / GM_ID_SIGNAL
        gds_n = id_a * self.cb.gds_per_a("n", GM_ID_SIGNAL, L, vout - 0.3)
        gds_p = id_a * self.cb.gds_per_a("p", GM_ID_LOAD, L, 1.8 - vout)
        return 1.0 / (gds_n + gds_p)

    def _five_t(self, tag, diode_gate, other, b, gm, vout, *, probe=False, role="", type_name="", node=-1,
                kind="diff pair + mirror load"):
        """NMOS pair (diode_gate on the mirror's diode side, other on the output side b), PMOS mirror,
        NMOS tail of 2 Id from the reference. Current into b: +gm*(v(diode_gate) - v(other))."""
        L, rout = self._best_length(lambda L: self._rout_5t(gm, L, vout), self.r0)
        if probe:
            return L, rout
        cb = self.cb
        id_a = gm / GM_ID_SIGNAL
        d, t = f"d{tag}", f"t{tag}"
        vtail = self.cond.vcm - self.cb.at_gm_id("n", GM_ID_SIGNAL, L, 0.5)["vgs"]
        ld = cb.mos(f"{tag}d", "p", d, d, "vdd", id_a=id_a, l_um=L, vds=1.1, gm_id=GM_ID_LOAD)
        cb.mos(f"{tag}o", "p", b, d, "vdd", id_a=id_a, l_um=L, vds=1.8 - vout, share=f"{tag}d")
        cb.mos(f"{tag}a", "n", d, diode_gate, t, id_a=id_a, l_um=L, vds=1.8 - ld.vgs - vtail, gm_id=GM_ID_SIGNAL)
        cb.mos(f"{tag}b", "n", b, other, t, id_a=id_a, l_um=L, vds=vout - vtail, share=f"{tag}a")
        cb.sink(f"{tag}t", self.bias, t, id_a=2 * id_a, vds=max(vtail, 0.1))
        return StageRealization(node, role, type_name, kind, "inp/inn", b,
                                tuple(f"xm{tag}{x}" for x in ("a", "b", "d", "o", "t")), gm, id_a, L, self.r0, rout)

    def _folded_cascode(self, tag, diode_gate, other, b, gm, vout, role, type_name, i) -> StageRealization:
        """NMOS pair folding into PMOS sources (2 Id each), PMOS cascodes, a wide-swing NMOS cascode
        mirror (templates/sky130/foldedcascode.cir's structure, biased from the one reference)."""
        cb, bias = self.cb, self.bias
        id_a = gm / GM_ID_SIGNAL

        def rout(L):
            g_pair = id_a * cb.gds_per_a("n", GM_ID_SIGNAL, L, 1.0)
            g_src = self._gds_src("p", bias.vbp, L, 0.3, 2 * id_a)
            pc = cb.at_gm_id("p", GM_ID_SIGNAL, L, 0.5)
            nc = cb.at_gm_id("n", GM_ID_SIGNAL, L, 0.4)
            g_mir = id_a * cb.gds_per_a("n", GM_ID_LOAD, L, 0.3)
            r_up = pc["gm_gds"] / (g_pair + g_src)
            r_dn = nc["gm_gds"] / g_mir
            return 1.0 / (1.0 / r_up + 1.0 / r_dn)

        L, r = self._best_length(rout, self.r0)
        f1, f2, d, t = f"f1{tag}", f"f2{tag}", f"d{tag}", f"t{tag}"
        vtail = self.cond.vcm - cb.at_gm_id("n", GM_ID_SIGNAL, L, 0.5)["vgs"]
        # the source devices: |VDS| of vdsat + 0.15 V, so the cascode gate sits VSG below that
        src_p = cb.at_vgs("p", bias.vbp, L, 0.3)
        pc = cb.at_gm_id("p", GM_ID_SIGNAL, L, 0.5)
        v_f = 1.8 - (src_p["vdsat"] + 0.15)
        mir = cb.at_gm_id("n", GM_ID_LOAD, L, 0.3)
        nc = cb.at_gm_id("n", GM_ID_SIGNAL, L, 0.4)
        vbpc = v_f - pc["vgs"]                           # gate of the PMOS cascodes (absolute)
        vbnc = mir["vdsat"] + 0.15 + nc["vgs"]
        cb.diode_bias(f"{tag}bpc", "p", bias, f"vbpc{tag}", 1.8 - vbpc)
        cb.diode_bias(f"{tag}bnc", "n", bias, f"vbnc{tag}", vbnc)
        cb.mos(f"{tag}a", "n", f1, diode_gate, t, id_a=id_a, l_um=L, vds=v_f - vtail, gm_id=GM_ID_SIGNAL)
        cb.mos(f"{tag}b", "n", f2, other, t, id_a=id_a, l_um=L, vds=v_f - vtail, share=f"{tag}a")
        cb.sink(f"{tag}t", bias, t, id_a=2 * id_a, vds=max(vtail, 0.1))
        cb.source(f"{tag}s1", bias, f1, id_a=2 * id_a, vds=1.8 - v_f, l_um=L)
        cb.mos(f"{tag}s2", "p", f2, "vbp", "vdd", id_a=2 * id_a, l_um=L, vds=1.8 - v_f, share=f"{tag}s1")
        cb.mos(f"{tag}c1", "p", d, f"vbpc{tag}", f1, id_a=id_a, l_um=L, vds=0.5, gm_id=GM_ID_SIGNAL)
        cb.mos(f"{tag}c2", "p", b, f"vbpc{tag}", f2, id_a=id_a, l_um=L, vds=0.5, share=f"{tag}c1")
        cb.mos(f"{tag}n1", "n", d, f"vbnc{tag}", f"s1{tag}", id_a=id_a, l_um=L, vds=0.4, gm_id=GM_ID_SIGNAL)
        cb.mos(f"{tag}n2", "n", b, f"vbnc{tag}", f"s2{tag}", id_a=id_a, l_um=L, vds=0.4, share=f"{tag}n1")
        cb.mos(f"{tag}m1", "n", f"s1{tag}", d, "vss", id_a=id_a, l_um=L, vds=0.3, gm_id=GM_ID_LOAD)
        cb.mos(f"{tag}m2", "n", f"s2{tag}", d, "vss", id_a=id_a, l_um=L, vds=0.3, share=f"{tag}m1")
        devs = tuple(f"xm{tag}{x}" for x in ("a", "b", "t", "s1", "s2", "c1", "c2", "n1", "n2", "m1", "m2"))
        return StageRealization(i, role, type_name, "folded cascode", "inp/inn", b, devs, gm, id_a, L, self.r0, r)

    # ---- side branches -------------------------------------------------------------------------
    def _branch(self, i: int, stage_in: dict) -> None:
        node = self.c.nodes[i]
        kind = node.kind
        role = _ROLE[node.pos]
        if not kind.has_gm:
            return                                   # R / C only: _passives
        a_beh, b_beh = _pins(self.c, self.s, i, stage_in)
        a, b = self.net[a_beh], self.net[b_beh]
        gm = node.values["gm"]
        tag = f"g{i}"
        if b_beh == "in":
            self.notes.append(f"{role} ({kind.name}): its gm drives the input, which the behavioural testbench's "
                              "ideal source holds (inert); the gm is not realised")
            self.stages.append(StageRealization(i, role, kind.name, "inert feedback gm", a, b, (), gm))
            return
        vout = self.vdc[b]
        if a_beh == "in":
            diode_gate = "inp" if -kind.gm_sign * self.sigma > 0 else "inn"
            other = "inn" if diode_gate == "inp" else "inp"
            st = self._five_t(tag, diode_gate, other, b, gm, vout, role=role, type_name=kind.name, node=i,
                              kind="diff transconductor")
        elif kind.gm_sign > 0:
            st = self._transconductor(tag, a, b, gm, vout, role, kind.name, i)
        else:
            st = self._mirrored(tag, a, b, gm, vout, role, kind.name, i, kind="mirrored transconductor")
        self.stages.append(st)

    def _transconductor(self, tag, a, b, gm, vout, role, type_name, i) -> StageRealization:
        """NMOS common source whose gate level is fixed elsewhere (the net a's DC level): its gm/Id
        follows from that VGS and L; a PMOS source at b supplies its current."""
        cb = self.cb
        vg = self.vdc[a]

        def rout(L):
            p = cb.at_vgs("n", vg, L, vout)
            id_a = gm / p["gm_id"]
            return 1.0 / (id_a * p["gm_id"] / p["gm_gds"] + self._gds_src("p", self.bias.vbp, L, 1.8 - vout, id_a))

        L, r = self._best_length(rout, self.r0)
        p = cb.at_vgs("n", vg, L, vout)
        id_a = gm / p["gm_id"]
        cb.mos(f"{tag}", "n", b, a, "vss", id_a=id_a, l_um=L, vds=vout, vgs=vg)
        cb.source(f"{tag}l", self.bias, b, id_a=id_a, vds=1.8 - vout, l_um=L)
        return StageRealization(i, role, type_name, "transconductor", a, b, (f"xm{tag}", f"xm{tag}l"), gm, id_a, L,
                                self.r0, r)

    # ---- passives ------------------------------------------------------------------------------
    def _passives(self, i: int, stage_in: dict) -> None:
        node = self.c.nodes[i]
        kind = node.kind
        if not ("R" in node.values or "C" in node.values):
            return
        a_beh, b_beh = _pins(self.c, self.s, i, stage_in)
        a, b = self.net[a_beh], self.net[b_beh]
        role = _ROLE[node.pos]
        if self.sigma < 0 and "in" in (a_beh, b_beh):
            self.notes.append(f"{role} ({kind.name}): its R/C meets the input, realised as inn, which the open-loop "
                              "testbench holds at AC ground (the behavioural testbench drives it)")
        v = node.values
        if kind.connection == Connection.SERIES:
            x = f"x{i}"
            self.net[f"x{i}"] = x
            self.cb.resistor(f"r{i}", a, x, v["R"])
            self.cb.capacitor(f"c{i}", x, b, v["C"])
        else:
            if "R" in v:
                self.cb.resistor(f"r{i}", a, b, v["R"])
            if "C" in v:
                self.cb.capacitor(f"c{i}", a, b, v["C"])
        if not kind.has_gm:
            what = " + ".join(k for k, dev in (("poly resistor", "R"), ("MIM capacitor", "C")) if dev in v)
            self.stages.append(StageRealization(i, role, kind.name, what, a, b))
