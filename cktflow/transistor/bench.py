"""Measure a transistor-level op-amp (a subcircuit with ports inp inn out vdd vss) on a PDK.

The testbenches are data (templates/<pdk templates>/opamp_tb.cir): open loop with a DC servo,
common-mode and supply AC on copies of the same servo, a unity-gain follower step, all on one deck
so that the PDK's model library is loaded once per corner. Sizes (global .params of the amplifier)
and conditions change in place (spice_sim.analyses.Session: alterparam + reset), so a new sizing
costs milliseconds instead of the library's load.

What each metric means (name, unit, definition, which block measures it): the registry in
spice_sim.metrics, the one definition the docs' tables are made from. This module computes them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from string import Template

import numpy as np

from spice_sim.analyses import ModelLibrary, OpPoint, Session
from spice_sim.engine import NgSpiceEngine, get_engine
from spice_sim.measure import Performance, measure, measure_step, step_grows
from spice_sim.metrics import METRIC_UNITS

from ..resources import templates_dir
from ..technology import Technology, load_technology
from .netlist import check_transistor_netlist, logical_lines, passive_area_um2, spice_number

__all__ = ["Conditions", "OpampMetrics", "OpampBench", "model_library", "deck_params", "opamp_testbench",
           "AC_START_HZ", "AC_STOP_HZ"]

AC_START_HZ = 1.0
AC_STOP_HZ = 10e9
AC_POINTS_PER_DECADE = 20
SWING_STEP_V = 0.002
#: Largest transient time step of the follower, as a fraction of one edge's window (60 closed-loop
#: time constants). 1/1000 reads the same slew (within 2 %), settling and overshoot as 1/3000 on the
#: four templates at 2-2.5x less time (measured: ota5t 1.32 -> 0.54 s, miller2 1.94 -> 0.97 s).
#: Coarser (1/200, ngspice's own step control in between) misreads the nested-Miller's falling
#: slew by 6 %: the largest dV/dt needs the edge resolved.
STEP_DIVS = 1000


def _wiring(rfb: float, csv: float, rin: float, ac_in: float, ac_cm: float, ac_dd: float) -> dict:
    return {"rfb": {"resistance": rfb}, "csv": {"capacitance": csv}, "rin": {"resistance": rin},
            "vin": {"acmag": ac_in}, "vacm": {"acmag": ac_cm}, "vdd": {"acmag": ac_dd}}


#: The testbench's wirings besides the open loop it is written as (templates/<pdk>/opamp_tb.cir
#: explains them), as `alter`s of its plain elements: element -> {parameter: value}. Each sets every
#: element that differs between wirings, so they can come in any order.
WIRING = {
    "cm": _wiring(1e9, 1e3, 1e15, 1.0, 1.0, 0.0),      # both inputs move: common-mode gain
    "ps": _wiring(1e9, 1e3, 1e15, 0.0, 0.0, 1.0),      # AC on vdd only: supply gain
    "sw": _wiring(1e9, 1e3, 1e9, 1.0, 0.0, 0.0),       # inverting, gain -1: swing (DC)
    "st": _wiring(1e-3, 1e-18, 1e15, 1.0, 0.0, 0.0),   # follower: the step (transient)
}


def model_library(tech: Technology, corner: str | None = None) -> ModelLibrary:
    """spice_sim's view of a transistor PDK's library at one corner."""
    corner = corner or tech.default_corner
    if corner not in tech.corners:
        raise ValueError(f"unknown corner '{corner}' for PDK {tech.name} (known: {', '.join(tech.corners)})")
    return ModelLibrary(file=tech.library_path(), section=corner, settings=tech.simulator_settings,
                        root=tech.install_dir)


@dataclass(frozen=True)
class Conditions:
    """Everything a measurement depends on besides the circuit; a report names them."""
    corner: str = "tt"
    temp_c: float = 27.0
    vdd: float | None = None       # None: the PDK's nominal supply
    vcm: float | None = None       # input common mode; None: vdd / 2
    cl: float = 5e-12              # load capacitance, F
    vstep: float = 0.3             # the follower's input step, V
    spot_hz: float = 1e3           # spot-noise frequency

    @property
    def label(self) -> str:
        """How reports name the condition, e.g. "ss -40C"."""
        return f"{self.corner} {self.temp_c:g}C"

    def resolved(self, tech: Technology) -> "Conditions":
        vdd = self.vdd if self.vdd is not None else tech.supply_v
        vcm = self.vcm if self.vcm is not None else vdd / 2
        return Conditions(self.corner, self.temp_c, vdd, vcm, self.cl, self.vstep, self.spot_hz)


@dataclass
class OpampMetrics:
    """One measurement of an amplifier at one set of conditions. The values live in `performance`
    (metric registry, spice_sim.metrics); `m.cmrr_db` reads `m.performance.cmrr_db`."""
    conditions: dict
    performance: Performance
    worst_device: str | None = None           # the device with the smallest vds - vdsat
    op: OpPoint | None = field(default=None, repr=False)
    step: dict | None = field(default=None, repr=False)   # time, vin, vout of the follower; edge_s: rising edge
    ac: dict | None = field(default=None, repr=False)     # freq, h (open loop) for a Bode plot

    def __getattr__(self, name: str):
        if name in METRIC_UNITS:
            return self.performance.get(name)
        raise AttributeError(name)

    def to_dict(self) -> dict:
        d = {"conditions": self.conditions, "worst_device": self.worst_device}
        d.update(self.performance.items())
        if self.op is not None:
            d["devices"] = {k: v.to_dict() for k, v in self.op.devices.items()}
        return d


class OpampBench:
    """The op-amp testbench deck for one amplifier on one corner, kept loaded.

    `dut`: netlist text that defines subcircuit `dut_name` (ports inp inn out vdd vss), its sizes
    written as `{param}` of the global parameters `params` (their starting values). Checked against
    the PDK (safety, device names, limits) before anything is loaded."""

    def __init__(self, dut: str, dut_name: str, params: dict[str, float], *, pdk: str | Technology = "sky130",
                 corner: str | None = None, engine: NgSpiceEngine | None = None, source: str = "<dut>"):
        self.tech = pdk if isinstance(pdk, Technology) else load_technology(pdk)
        self.corner = corner or self.tech.default_corner
        self.dut, self.dut_name, self.source = dut, dut_name, source
        checked = check_transistor_netlist(dut, self.tech, source=source, params=params)
        params = params or {}
        if dut_name.lower() not in {ln.split()[1].lower() for ln in checked.lines if ln.lower().startswith(".subckt")}:
            raise ValueError(f"{source}: defines no subcircuit '{dut_name}'")
        # the DUT's own .param lines carry its defaults; `params` override them (as alterable globals)
        body = "\n".join(ln for ln in checked.lines if not ln.lower().startswith(".param"))
        tb, tb_params = opamp_testbench(self.tech, dut_name)
        params = {**deck_params(dut), **{k.lower(): float(v) for k, v in params.items()}}
        self.size_names = tuple(params)
        self.default_sizes = dict(params)      # the DUT's .param defaults, overridden by `params`
        fets = {d.model for d in self.tech.devices.values() if d.type in ("nmos", "pmos")}
        self.session = Session(engine or get_engine(), body + "\n" + tb,
                               library=model_library(self.tech, self.corner),
                               params={**tb_params, **{k.lower(): float(v) for k, v in params.items()}},
                               device_models=fets,
                               title=f"{dut_name} op-amp testbenches ({self.tech.name} {self.corner})")
        # per-device op points of the amplifier (the testbench has no transistors of its own)
        self.session.devices = {k: v for k, v in self.session.devices.items() if k.startswith("xdut.")}

    @property
    def load_seconds(self) -> float:
        return self.session.load_seconds

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "OpampBench":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def set_sizes(self, **sizes: float) -> None:
        """New sizes, checked against the PDK's limits first (nothing runs if one is outside)."""
        self.session.set_params(**self._checked_sizes(sizes))

    def _checked_sizes(self, sizes: dict) -> dict[str, float]:
        """Every sizing parameter's value with `sizes` applied, checked against the PDK's limits."""
        unknown = {k.lower() for k in sizes} - set(self.size_names)
        if unknown:
            raise KeyError(f"unknown sizing parameter(s): {', '.join(sorted(unknown))} "
                           f"(known: {', '.join(self.size_names)})")
        merged = {k: self.session.params[k] for k in self.size_names}
        merged.update({k.lower(): float(v) for k, v in sizes.items()})
        check_transistor_netlist(self.dut, self.tech, source=self.source, params=merged)
        return merged

    def measure(self, conditions: Conditions | None = None, *, noise: bool = True, step: bool = True,
                swing: bool = True, keep_step: bool = False, keep_ac: bool = False, **sizes: float) -> OpampMetrics:
        cond = (conditions or Conditions(corner=self.corner)).resolved(self.tech)
        if cond.corner != self.corner:
            raise ValueError(f"this bench is loaded for corner {self.corner}; "
                             f"open another OpampBench for {cond.corner}")
        s = self.session
        # sizes and conditions in one reset (~25 ms with the library loaded), which also undoes the
        # previous measurement's rewiring: the deck is the open loop again
        s.set_params(**(self._checked_sizes(sizes) if sizes else {}), vdd=cond.vdd, vcm=cond.vcm, cl=cond.cl,
                     vstep=cond.vstep)
        s.set_temperature(cond.temp_c)
        op = s.op()
        ol = {k: v for k, v in op.devices.items() if k.startswith("xdut.")}
        v: dict = {}                              # metric -> value (spice_sim.metrics)
        worst_device = None
        v["offset_v"] = op.voltages["out"] - op.voltages["inp"]
        v["supply_a"] = -op.currents["vdd"]
        v["power_w"] = cond.vdd * v["supply_a"]
        v["area_um2"] = (sum(d.w * d.l for d in ol.values()) * 1e12
                         + passive_area_um2(self.dut, self.tech, self.dut_name,
                                            {k: s.params[k] for k in self.size_names}))
        if ol:
            worst = min(ol.values(), key=lambda d: d.margin)
            v["min_margin_v"], worst_device = worst.margin, worst.instance
            v["all_saturated"] = all(d.region == "saturation" for d in ol.values())
        ac = s.ac(AC_START_HZ, AC_STOP_HZ, AC_POINTS_PER_DECADE, ("out", "inp"))
        h = ac["out"] / ac["inp"]
        perf = measure(ac.scale, h).with_values(ocb_pm_deg=None)   # OCB's label convention: behavioural only
        if noise:
            fstop = perf.ugf_hz or perf.bw_hz or 1e6
            nd = s.noise("out", "vin", AC_START_HZ, max(fstop, 10 * AC_START_HZ), 20)
            v["noise_v_rms"] = nd.inoise_total
            v["noise_v_per_rthz"] = float(np.exp(np.interp(math.log(cond.spot_hz), np.log(nd.freq),
                                                           np.log(nd.inoise))))
        # CMRR and PSRR at the lowest frequency: one decade of one point each is enough
        a0 = abs(h[0])
        for metric, wiring in (("cmrr_db", "cm"), ("psrr_db", "ps")):
            self._wire(wiring)
            v[metric] = _db(a0) - _db(abs(s.ac(AC_START_HZ, 10 * AC_START_HZ, 1, ("out",))["out"][0]))
        if swing:
            v["swing_low_v"], v["swing_high_v"] = self._swing(cond)
            if v["swing_low_v"] is not None:
                v["swing_v"] = v["swing_high_v"] - v["swing_low_v"]
        wave = None
        if step:
            (v["slew_rise_v_per_s"], v["slew_fall_v_per_s"], v["settling_s"], v["overshoot_pct"], v["stable"],
             wave) = self._step(perf, cond)
            if v["slew_rise_v_per_s"] is not None and v["slew_fall_v_per_s"] is not None:
                v["slew_v_per_s"] = min(v["slew_rise_v_per_s"], v["slew_fall_v_per_s"])
        return OpampMetrics(conditions=asdict(cond), performance=perf.with_values(**v), worst_device=worst_device,
                            op=op, step=wave if keep_step else None,
                            ac={"freq": np.asarray(ac.scale), "h": np.asarray(h)} if keep_ac else None)

    def _wire(self, name: str) -> None:
        for element, values in WIRING[name].items():
            self.session.alter(element, **values)

    def _swing(self, cond: Conditions) -> tuple[float | None, float | None]:
        """The output range over which the open-loop gain stays at least half its largest value
        (the inverting block's DC sweep, A = 2 g / (1 - g))."""
        self._wire("sw")
        sweep = self.session.dc("vdrv", 0.0, cond.vdd, SWING_STEP_V, ("out",))
        vout = sweep["out"]
        g = -np.gradient(vout, sweep.scale)
        a = np.where(g < 1.0, 2 * g / np.maximum(1.0 - g, 1e-12), np.inf)
        a = np.where(g > 0, a, 0.0)
        k = int(np.argmax(a))
        if not np.isfinite(a[k]) or a[k] <= 0:
            return None, None
        ok = a >= a[k] / 2
        lo = hi = k
        while lo > 0 and ok[lo - 1]:
            lo -= 1
        while hi < len(a) - 1 and ok[hi + 1]:
            hi += 1
        ends = (float(vout[lo]), float(vout[hi]))
        return min(ends), max(ends)

    def _step(self, perf: Performance, cond: Conditions):
        """The follower's response to a rising and a falling step of cond.vstep."""
        s = self.session
        f = perf.ugf_hz or perf.bw_hz or 1e6
        tau = 1.0 / (2 * math.pi * f)
        tpw = max(60 * tau, 1e-8)                 # each edge gets 60 closed-loop time constants
        tdel = tpw / 20
        tedge = min(tau / 20, 1e-9)
        self._wire("st")
        v0, v1 = cond.vcm - cond.vstep / 2, cond.vcm + cond.vstep / 2
        # the deck's pulse with this timing (alterparam of tdel/tpw/tedge would cost a reset)
        s.alter("vin", pulse=(v0, v1, tdel, tedge, tedge, tpw, 2 * tpw + 2 * tedge))
        tstop = tdel + 2 * tpw + 2 * tedge
        tmax = tpw / STEP_DIVS
        tr = s.tran(tmax, tstop, ("out", "inp"), tmax=tmax)
        t, vout = tr.scale, tr["out"]
        results, grows = [], []
        for start, lo, hi in ((tdel, v0, v1), (tdel + tpw + tedge, v1, v0)):
            sel = (t >= start) & (t <= start + tpw)
            te, ye = t[sel] - start, vout[sel]
            final = float(np.mean(ye[-max(3, len(ye) // 50):]))   # the settled level (offset included)
            initial = float(ye[0])
            span = final - initial
            if abs(span) < 1e-6:
                results.append((None, None, None))
                continue
            if not np.all(np.isfinite(ye)):
                results.append((None, None, None))
                grows.append(True)
                continue
            y = (ye - initial) / span
            inside = (y >= 0.1) & (y <= 0.9)
            slope = np.abs(np.gradient(ye, te))
            slew = float(slope[inside].max()) if inside.any() else None
            overshoot, settling = measure_step(te, y, 1.0)
            results.append((slew, settling, overshoot))
            grows.append(step_grows(y, 1.0))
        (sr_r, st_r, os_r), (sr_f, st_f, os_f) = results
        settling = None if st_r is None or st_f is None else max(st_r, st_f)
        overshoot = None if os_r is None or os_f is None else max(os_r, os_f)
        stable = None if len(grows) < 2 else not any(grows)
        return sr_r, sr_f, settling, overshoot, stable, {"time": t, "vin": tr["inp"], "vout": vout, "edge_s": tdel}


def opamp_testbench(tech: Technology, dut_name: str) -> tuple[str, dict[str, float]]:
    """The PDK's op-amp testbench (templates/<pdk>/opamp_tb.cir) for subcircuit `dut_name`, without
    its .param lines, and those parameters' default values (the caller writes its own .param line)."""
    text = Template((templates_dir() / tech.templates / "opamp_tb.cir").read_text()).substitute(dut=dut_name)
    body = "\n".join(ln for ln in text.splitlines() if ln.split() and not ln.lower().startswith(".param"))
    return body, deck_params(text)


def deck_params(text: str) -> dict[str, float]:
    """The numeric global .param values of a template (its conditions' defaults), continuation
    lines included."""

    out = {}
    for _, ln in logical_lines(text):
        if ln.lower().startswith(".param"):
            for tok in ln[6:].split():
                if "=" in tok:
                    k, v = tok.split("=", 1)
                    val = spice_number(v)
                    if val is not None:
                        out[k.lower()] = val
    return out


def _db(x: float) -> float:
    return 20 * math.log10(max(x, 1e-300))
