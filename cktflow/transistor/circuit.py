"""A transistor-level op-amp: one representation for templates, users' netlists, sizing and export.

A `TransistorCircuit` is a subcircuit with the ports `inp inn out vdd vss` on one PDK: its netlist
body (devices whose sizes are written `{param}`) and its named sizing parameters, each with a value,
a unit and bounds. Bounds of W, L, nf and m come from the PDK's limits for the device kinds the
parameter sizes (the tightest when it sizes several); other parameters (bias currents, ideal
voltages, R, C) take the bounds the netlist declares in `*@ param` lines, else a decade either side
of their value. It is immutable: `with_sizes` returns a new circuit.

Netlists come from templates (templates/<pdk>/*.cir with a `*@ template` line) or from a user's
SPICE file; both are vetted by `check_transistor_netlist` (no `.control`, includes only from the
PDK, PDK device names and limits) before anything else. `*@` lines are SPICE comments:
    *@ template NAME: description          marks a template
    *@ conditions vcm=1.1 cl=5p            the conditions its figures are quoted at
    *@ param NAME unit=A min=1u max=200u   bounds of a parameter (within the PDK's, for a size)

Identity: `canonical_hash()` covers the PDK, the body (comments, whitespace, case and the
subcircuit's own name do not count) and every parameter value to 6 significant digits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from spice_sim.errors import NetlistError

from ..resources import templates_dir
from ..technology import Technology, load_technology
from .netlist import check_transistor_netlist, logical_lines, spice_number

__all__ = ["TransistorCircuit", "SizingParam", "CircuitFileError", "PortError", "SizingError",
           "TransistorFormatError", "PORTS", "FORMAT", "FORMAT_VERSION", "templates", "from_template",
           "read_subckt", "spice_value"]

log = logging.getLogger(__name__)

#: The amplifier's ports, in the order every cktflow testbench connects them.
PORTS = ("inp", "inn", "out", "vdd", "vss")
FORMAT = "cktflow.transistor-circuit"
FORMAT_VERSION = 1
#: Significant digits of parameter values that take part in the canonical hash (as circuit.ir).
HASH_DIGITS = 6
#: The numeric fields of cktflow.transistor.Conditions a circuit may name as its own conditions.
CONDITION_KEYS = ("temp_c", "vdd", "vcm", "cl", "vstep", "spot_hz")
#: Units of parameters that size no PDK device, by the element they set.
_ELEMENT_UNIT = {"i": "A", "v": "V", "r": "ohm", "c": "F"}
_GEOMETRY_UNIT = {"w": "um", "l": "um", "nf": "", "m": ""}
_REF = re.compile(r"\{([^{}]*)\}")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class CircuitFileError(ValueError):
    """A netlist that cannot be a transistor circuit; the message names the file and line."""


class PortError(CircuitFileError):
    """The amplifier subcircuit lacks one of the ports inp inn out vdd vss (or has others)."""


class SizingError(ValueError):
    """A size outside its bounds, off the PDK's grid, or not a parameter of the circuit."""


class TransistorFormatError(ValueError):
    """A JSON description that cannot be read; the message names the field."""


@dataclass(frozen=True)
class SizingParam:
    name: str
    value: float
    unit: str                    # um (W, L), "" (nf, m), A, V, ohm, F
    low: float
    high: float
    grid: float | None = None    # W, L: the PDK's grid (um); nf, m: 1; else continuous
    sizes: tuple[str, ...] = ()  # what it sizes, e.g. ("nfet_01v8.w",) or ("i",)

    def problem(self, value: float) -> str | None:
        """Why `value` cannot be this parameter's value, or None."""
        if not math.isfinite(value):
            return f"{self.name}={value} is not a finite number"
        if not self.low * (1 - 1e-9) <= value <= self.high * (1 + 1e-9):
            unit = f" {self.unit}" if self.unit else ""
            what = f" ({', '.join(self.sizes)})" if self.sizes else ""
            return f"{self.name}={value:g}{unit} is outside [{self.low:g}, {self.high:g}]{what}"
        if self.grid and abs(value / self.grid - round(value / self.grid)) > 1e-6:
            return f"{self.name}={value:g} is not on the {self.grid:g} grid (snapped: {self.snap(value):g})"
        return None

    def snap(self, value: float) -> float:
        """`value` clipped into the bounds and rounded to the grid."""
        v = min(max(float(value), self.low), self.high)
        if self.grid:
            v = round(round(v / self.grid) * self.grid, 9)
            v = min(max(v, math.ceil(self.low / self.grid - 1e-9) * self.grid),
                    math.floor(self.high / self.grid + 1e-9) * self.grid)
            v = round(v, 9)
        return v

    def to_dict(self) -> dict:
        return {"name": self.name, "value": self.value, "unit": self.unit, "min": self.low, "max": self.high,
                "grid": self.grid, "sizes": list(self.sizes)}


@dataclass(frozen=True)
class TransistorCircuit:
    name: str                                  # the subcircuit's name
    pdk: str
    body: str                                  # .subckt NAME inp inn out vdd vss ... .ends (logical lines)
    params: tuple[SizingParam, ...]
    conditions: Mapping[str, float] = field(default_factory=dict)   # where its figures are quoted (vcm, cl)
    description: str = ""
    source: str = ""                           # where it was read from (messages only, not identity)

    def __post_init__(self):
        object.__setattr__(self, "params", tuple(sorted(self.params, key=lambda p: p.name)))
        object.__setattr__(self, "conditions", dict(self.conditions))
        for p in self.params:
            why = p.problem(p.value)
            if why:
                raise SizingError(f"{self.source or self.name}: {why}")

    # ---- sizes ---------------------------------------------------------------------------------
    @property
    def technology(self) -> Technology:
        return load_technology(self.pdk)

    def sizes(self) -> dict[str, float]:
        return {p.name: p.value for p in self.params}

    def param(self, name: str) -> SizingParam:
        for p in self.params:
            if p.name == name.lower():
                return p
        raise SizingError(f"{self.name}: unknown sizing parameter '{name}' "
                          f"(known: {', '.join(p.name for p in self.params)})")

    def with_sizes(self, **sizes: float) -> "TransistorCircuit":
        """A copy with some sizes changed; SizingError (naming the parameter) when one is unknown,
        outside its bounds or off the grid."""
        new = {p.name: p for p in self.params}
        for key, value in sizes.items():
            p = self.param(key)
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise SizingError(f"{self.name}: {p.name} must be a number, got {value!r}") from None
            why = p.problem(v)
            if why:
                raise SizingError(f"{self.name}: {why}")
            new[p.name] = replace(p, value=v)
        return replace(self, params=tuple(new.values()))

    def snapped(self, **sizes: float) -> "TransistorCircuit":
        """`with_sizes` after clipping each value into its bounds and onto its grid (every current
        value when no sizes are given)."""
        sizes = sizes or self.sizes()
        return self.with_sizes(**{k: self.param(k).snap(float(v)) for k, v in sizes.items()})

    # ---- simulation ----------------------------------------------------------------------------
    def param_lines(self) -> str:
        # one .param per line: OpampBench reads a DUT's defaults line by line (no continuations)
        return "\n".join(f".param {p.name}={spice_value(p.value)}" for p in self.params)

    def dut(self) -> tuple[str, str, dict[str, float]]:
        """(netlist text, subcircuit name, sizes): the arguments of OpampBench(dut, name, params)."""
        text = f"* {self.name} ({self.pdk}) {self.canonical_hash()}\n{self.param_lines()}\n{self.body}\n"
        return text, self.name, self.sizes()

    # ---- identity and serialisation ------------------------------------------------------------
    def canonical_hash(self) -> str:
        """Equal for the same design whatever its parameter order, whitespace, comments or subcircuit
        name; different when any size (or device, or net) differs."""
        body = _normal_body(self.body, self.name)
        vals = tuple((p.name, float(f"{p.value:.{HASH_DIGITS}g}")) for p in self.params)
        return hashlib.sha256(repr((self.pdk, body, vals)).encode()).hexdigest()[:32]

    def topology_hash(self) -> str:
        """Equal for every sizing of one netlist (what a dataset split keeps on one side)."""
        return hashlib.sha256(repr((self.pdk, _normal_body(self.body, self.name))).encode()).hexdigest()[:32]

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": FORMAT_VERSION, "name": self.name, "pdk": self.pdk,
                "description": self.description, "conditions": dict(self.conditions),
                "params": [p.to_dict() for p in self.params], "body": self.body.splitlines()}

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<json>") -> "TransistorCircuit":
        return _from_dict(data, source)

    @classmethod
    def from_json(cls, text: str, *, source: str = "<json>") -> "TransistorCircuit":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TransistorFormatError(f"{source}: not valid JSON: {exc.msg} at line {exc.lineno}, "
                                        f"column {exc.colno}") from None
        return _from_dict(data, source)

    # ---- export: plain ngspice -----------------------------------------------------------------
    def standalone_subckt(self) -> str:
        """The subcircuit with every size written in (no .param needed), headed by comments that
        identify it; it simulates in plain ngspice with the PDK's library."""
        sizes = self.sizes()
        head = [f"* {self.name}: cktflow transistor circuit {self.canonical_hash()} ({self.pdk})",
                f"* ports: {' '.join(PORTS)}",
                "* sizes: " + " ".join(f"{p.name}={spice_value(p.value)}" for p in self.params)]
        return "\n".join(head + [_substitute(ln, sizes) for ln in self.body.splitlines()]) + "\n"

    def testbench_deck(self, conditions=None) -> str:
        """A complete ngspice deck: the PDK library, the subcircuit, the PDK's opamp_tb.cir as written
        (the open loop with its DC servo) and a .control block that prints and writes the DC gain,
        the UGF and the phase margin. Run it with `ngspice -b` in a folder
        holding `spiceinit_text()` as .spiceinit (the library needs those settings at parse time).
        `conditions`: a cktflow.transistor.Conditions (default: the circuit's own conditions)."""
        from .bench import Conditions, opamp_testbench   # bench imports nothing from here: no import circle
        tech = self.technology
        cond = (conditions or Conditions(**self.conditions)).resolved(tech)
        tb, defaults = opamp_testbench(tech, self.name)
        params = {**defaults, "vdd": cond.vdd, "vcm": cond.vcm, "cl": cond.cl, "vstep": cond.vstep}
        return "\n".join([
            f"* {self.name}: open-loop AC testbench (cktflow, {tech.name} {cond.corner}, {cond.temp_c:g} C, "
            f"vdd {cond.vdd:g} V, vcm {cond.vcm:g} V, CL {cond.cl:g} F)",
            "* needs .spiceinit with: " + "; ".join(tech.simulator_settings),
            tech.lib_line(cond.corner),
            f".temp {cond.temp_c:g}",
            ".param " + " ".join(f"{k}={spice_value(v)}" for k, v in params.items()),
            self.standalone_subckt().rstrip(), tb, _CONTROL.format(name=self.name), ".end", ""])

    def spiceinit_text(self) -> str:
        """The .spiceinit the testbench needs: the PDK's settings, one thread (OpenMP under load)."""
        return "\n".join([*self.technology.simulator_settings, "set num_threads=1", ""])

    def __str__(self) -> str:
        return f"TransistorCircuit({self.name}, {self.pdk}, " + \
            " ".join(f"{p.name}={spice_value(p.value)}" for p in self.params) + ")"


# The measurements of testbench_deck, named as cktflow names them (metrics.md): gain at the lowest
# frequency, UGF at the first 0 dB crossing, PM = 180 - phase lag accumulated up to the UGF.
# `quit 0`: without it `ngspice -b` exits 1 ("no simulations run": the analyses are in .control).
_CONTROL = """.control
op
let supply_a = -i(vdd)
print supply_a
ac dec 20 1 10g
let h = v(out)/v(inp)
let gain = db(h)
let lag = (cph(h[0]) - cph(h))*180/pi
meas ac gain_db find gain at=1
meas ac ugf_hz when gain=0 fall=1
meas ac lag_ugf find lag when gain=0 fall=1
let pm_deg = 180 - lag_ugf
print gain_db ugf_hz pm_deg
wrdata {name}_ol.txt gain lag
quit 0
.endc"""


def spice_value(value: float) -> str:
    """A number as ngspice reads it back exactly; plain (no SI suffix), since W and L are in um."""
    return f"{float(value):.12g}"


def _substitute(line: str, sizes: Mapping[str, float]) -> str:
    """`{name}` -> the number; names inside an expression -> numbers (the braces stay)."""
    def one(m: re.Match) -> str:
        inner = m.group(1).strip()
        if inner.lower() in sizes:
            return spice_value(sizes[inner.lower()])
        return "{" + _WORD.sub(lambda w: spice_value(sizes[w.group(0).lower()])
                               if w.group(0).lower() in sizes else w.group(0), inner) + "}"
    return _REF.sub(one, line)


def _normal_body(body: str, name: str) -> tuple[str, ...]:
    out = []
    for _, ln in logical_lines(body):
        toks = re.sub(r"\s*=\s*", "=", ln.lower()).split()
        if toks[0] in (".subckt", ".ends") and len(toks) > 1 and toks[1] == name.lower():
            toks[1] = "<amp>"
        out.append(" ".join(toks))
    return tuple(out)


# ---- reading netlists ------------------------------------------------------------------------------

@dataclass
class _Header:
    template: str | None = None
    description: str = ""
    conditions: dict = field(default_factory=dict)
    bounds: dict = field(default_factory=dict)       # name -> (unit, low, high, line)


def _header(text: str, source: str) -> _Header:
    h = _Header()
    for no, raw in enumerate(text.splitlines(), start=1):
        s = raw.strip()
        if not s.startswith("*@"):
            continue
        where = f"{source}:{no}"
        kind, _, rest = s[2:].strip().partition(" ")
        if kind == "template":
            name, _, desc = rest.partition(":")
            h.template, h.description = name.strip(), desc.strip()
        elif kind in ("conditions", "param"):
            toks = rest.split()
            if kind == "param":
                if not toks:
                    raise CircuitFileError(f"{where}: '*@ param' needs a parameter name")
                pname, toks = toks[0].lower(), toks[1:]
            kv = _key_values(toks, where)
            if kind == "conditions":
                unknown = set(kv) - set(CONDITION_KEYS)
                if unknown:
                    raise CircuitFileError(f"{where}: unknown condition(s) {', '.join(sorted(unknown))} "
                                           f"(known: {', '.join(CONDITION_KEYS)})")
                h.conditions = {k: _number(v, where, k) for k, v in kv.items()}
            else:
                unknown = set(kv) - {"unit", "min", "max"}
                if unknown or not {"min", "max"} <= set(kv):
                    raise CircuitFileError(f"{where}: '*@ param {pname}' takes unit=, min= and max= "
                                           f"(got {', '.join(sorted(kv)) or 'nothing'})")
                lo, hi = _number(kv["min"], where, "min"), _number(kv["max"], where, "max")
                if not 0 <= lo < hi:
                    raise CircuitFileError(f"{where}: '*@ param {pname}': min must be below max")
                h.bounds[pname] = (kv.get("unit", ""), lo, hi, no)
        else:
            raise CircuitFileError(f"{where}: unknown '*@ {kind}' line (known: template, conditions, param)")
    return h


def _key_values(tokens: list[str], where: str) -> dict[str, str]:
    out = {}
    for tok in tokens:
        if "=" not in tok:
            raise CircuitFileError(f"{where}: expected key=value, got '{tok}'")
        k, v = tok.split("=", 1)
        out[k.lower()] = v
    return out


def _number(text: str, where: str, what: str) -> float:
    v = spice_number(text)
    if v is None:
        raise CircuitFileError(f"{where}: {what}={text} is not a number")
    return _clean(v)


def _clean(v: float) -> float:
    """A value read from text, without float noise from its SI suffix (10u -> 1e-05, not 9.999e-06)."""
    return float(f"{v:.12g}")


def read_subckt(text: str, *, source: str = "<netlist>", pdk: str = "sky130",
                name: str | None = None) -> TransistorCircuit:
    """The amplifier subcircuit of a user's SPICE text: the `.subckt` with ports inp inn out vdd
    vss (in any order; `name` picks one when the file defines several), its `.param` lines as
    sizing parameters. Vetted by check_transistor_netlist first; CircuitFileError naming the line."""
    tech = load_technology(pdk)
    header = _header(text, source)
    lines = logical_lines(text)
    params = _params(lines, source)
    try:
        check_transistor_netlist(text, tech, source=source, params={k: v for k, (v, _) in params.items()})
    except NetlistError as exc:
        raise CircuitFileError(str(exc)) from None
    amp, body = _amp_body(lines, source, name, tech)
    used = _roles(body, tech, params, source)
    sizing = tuple(_sizing_param(p, params[p][0], used[p], header.bounds.get(p), tech, source)
                   for p in sorted(used))
    for p in sorted(set(params) - set(used)):
        log.warning("%s:%d: parameter %s sizes nothing in %s; left out", source, params[p][1], p, amp)
    return TransistorCircuit(amp, tech.name, "\n".join(ln for _, ln in body), sizing, header.conditions,
                             header.description, source)


def _params(lines: list[tuple[int, str]], source: str) -> dict[str, tuple[float, int]]:
    out: dict[str, tuple[float, int]] = {}
    for no, ln in lines:
        if not ln.lower().startswith(".param"):
            continue
        for tok in re.sub(r"\s*=\s*", "=", ln[6:]).split():
            if "=" not in tok:
                raise CircuitFileError(f"{source}:{no}: expected name=value in .param, got '{tok}'")
            k, v = tok.split("=", 1)
            val = spice_number(v.strip("{}'\""))
            if val is None:
                raise CircuitFileError(f"{source}:{no}: .param {k}={v}: a sizing parameter must be a number "
                                       "(write expressions in the device lines)")
            out[k.lower()] = (_clean(val), no)
    return out


def _amp_body(lines, source, name, tech) -> tuple[str, list[tuple[int, str]]]:
    """The amplifier's name and the body lines to keep: every .subckt block, the amplifier's
    .subckt line rewritten with its ports in PORTS order. Top-level elements are refused."""
    subckts = [(no, ln.split()) for no, ln in lines if ln.lower().startswith(".subckt")]
    if not subckts:
        raise CircuitFileError(f"{source}: defines no .subckt (expected .subckt NAME {' '.join(PORTS)})")
    if name is not None:
        chosen = [s for s in subckts if len(s[1]) > 1 and s[1][1].lower() == name.lower()]
        if not chosen:
            raise CircuitFileError(f"{source}: defines no subcircuit '{name}' "
                                   f"(found: {', '.join(s[1][1] for s in subckts if len(s[1]) > 1)})")
    else:
        # the subcircuit with exactly the amplifier's ports, else the only one with some of them
        # (its missing ports are then reported), else the only one
        ports_of = [{p.lower() for p in s[1][2:] if "=" not in p} for s in subckts]
        chosen = ([s for s, ps in zip(subckts, ports_of) if ps == set(PORTS)]
                  or [s for s, ps in zip(subckts, ports_of) if ps & set(PORTS)] or subckts)
        if len(chosen) > 1:
            raise CircuitFileError(f"{source}: several subcircuits could be the amplifier "
                                   f"({', '.join(s[1][1] for s in chosen)}): name one")
    no, toks = chosen[0]
    amp = toks[1].lower() if len(toks) > 1 else ""
    ports = [t.lower() for t in toks[2:] if "=" not in t]
    missing = [p for p in PORTS if p not in ports]
    extra = [p for p in ports if p not in PORTS]
    if missing or extra or len(ports) != len(PORTS):
        what = (f"lacks port(s) {', '.join(missing)}" if missing else
                f"has port(s) {', '.join(extra) or 'twice'} beside {' '.join(PORTS)}")
        raise PortError(f"{source}:{no}: subcircuit '{amp}' {what} "
                        f"(an amplifier's ports are {' '.join(PORTS)}, in any order)")
    keep, inside = [], False
    for n, ln in lines:
        low = ln.lower()
        if low.startswith(".subckt"):
            inside = True
            if n == no:
                ln = " ".join([".subckt", amp, *PORTS, *[t for t in toks[2:] if "=" in t]])
        if inside and not low.startswith(".param"):
            keep.append((n, ln))
        elif not inside and not low.startswith((".param", ".end", ".lib", ".include", ".inc")):
            raise CircuitFileError(f"{source}:{n}: '{ln.split()[0]}' outside a subcircuit: the file may hold "
                                   ".subckt blocks, .param lines and the PDK's .lib line only")
        if low.startswith(".ends"):
            inside = False
    return amp, keep


def _roles(body, tech: Technology, params, source) -> dict[str, list[tuple[str, str]]]:
    """Parameter -> what it sets: (device kind name, w/l/nf/m) or ("", element letter)."""
    used: dict[str, list[tuple[str, str]]] = {}
    local = {ln.split()[1].lower() for _, ln in body if ln.lower().startswith(".subckt")}
    for no, ln in body:
        for m in _REF.finditer(ln):
            for w in _WORD.findall(m.group(1)):
                if w.lower() not in params:
                    raise CircuitFileError(f"{source}:{no}: '{{{m.group(1)}}}' names '{w}', which no .param defines")
                used.setdefault(w.lower(), [])
        toks = re.sub(r"\s*=\s*", "=", ln).split()
        letter = toks[0][0].lower()
        plain = [t for t in toks[1:] if "=" not in t]
        if letter == "x" and plain and plain[-1].lower() not in local:
            dev = tech.device(plain[-1])
            for tok in toks[1:]:
                k, _, v = tok.partition("=")
                k = "m" if k.lower() == "mult" else k.lower()
                ref = v.strip("{}").lower()
                if v.startswith("{") and ref in params and k in _GEOMETRY_UNIT:
                    used[ref].append((dev.name, k))
        elif letter in _ELEMENT_UNIT:
            for m in _REF.finditer(ln):
                if m.group(1).strip().lower() in params:
                    used[m.group(1).strip().lower()].append(("", letter))
    return used


def _sizing_param(name, value, roles, declared, tech: Technology, source) -> SizingParam:
    geometry = [(d, k) for d, k in roles if d]
    others = sorted({k for d, k in roles if not d})
    if geometry and others:
        raise CircuitFileError(f"{source}: parameter {name} sizes devices and sets {', '.join(others)} values too")
    if geometry:
        kinds = {k for _, k in geometry}
        if len(kinds) > 1:
            raise CircuitFileError(f"{source}: parameter {name} is used as {' and '.join(sorted(kinds))} at once")
        k = kinds.pop()
        lims = [tech.device(d).limits[k] for d, _ in geometry if k in tech.device(d).limits]
        if not lims:
            raise CircuitFileError(f"{source}: parameter {name} sets {k} of {geometry[0][0]}, "
                                   f"which {tech.name} gives no limits for")
        lo, hi = max(lim[0] for lim in lims), min(lim[1] for lim in lims)
        grid = (max(tech.device(d).grid or 0 for d, _ in geometry) or None) if k in ("w", "l") else 1.0
        unit = _GEOMETRY_UNIT[k]
        what = tuple(sorted({f"{d}.{k}" for d, _ in geometry}))
    else:
        unit = _ELEMENT_UNIT.get(others[0], "") if others else ""
        lo, hi, grid, what = value / 10, value * 10, None, tuple(others)
        if value <= 0 and declared is None:
            raise CircuitFileError(f"{source}: parameter {name}={value:g}: declare its bounds "
                                   f"('*@ param {name} unit={unit} min=... max=...')")
    if declared is not None:
        dunit, dlo, dhi, line = declared
        if geometry and not (lo * (1 - 1e-9) <= dlo and dhi <= hi * (1 + 1e-9)):
            raise CircuitFileError(f"{source}:{line}: bounds of {name} [{dlo:g}, {dhi:g}] leave the PDK's "
                                   f"[{lo:g}, {hi:g}] ({', '.join(what)})")
        lo, hi, unit = dlo, dhi, dunit or unit
    return SizingParam(name, value, unit, lo, hi, grid, what)


# ---- templates ---------------------------------------------------------------------------------

def _template_files(pdk: str) -> dict[str, Path]:
    tech = load_technology(pdk)
    out = {}
    for path in sorted((templates_dir() / tech.templates).glob("*.cir")):
        m = re.search(r"^\*@\s*template\s+([A-Za-z0-9_]+)", path.read_text(), re.M)
        if m:
            out[m.group(1).lower()] = path
    return out


def templates(pdk: str = "sky130") -> list[str]:
    """The names of the PDK's amplifier templates."""
    return list(_template_files(pdk))


def from_template(name: str, pdk: str = "sky130", **sizes: float) -> TransistorCircuit:
    """A template's circuit at its default sizes, with `sizes` changed (checked as with_sizes)."""
    files = _template_files(pdk)
    path = files.get(name.lower())
    if path is None:
        raise KeyError(f"no template '{name}' for {pdk} (known: {', '.join(files)})")
    c = replace(read_subckt(path.read_text(), source=path.name, pdk=pdk, name=name), source=f"template {name}")
    return c.with_sizes(**sizes)


# ---- JSON ----------------------------------------------------------------------------------------

def _field(data: dict, key: str, kind, where: str):
    if key not in data:
        raise TransistorFormatError(f"{where}: missing field '{key}'")
    value = data[key]
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TransistorFormatError(f"{where}: field '{key}' must be a number, got {value!r}")
        return float(value)
    if not isinstance(value, kind):
        raise TransistorFormatError(f"{where}: field '{key}' must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _from_dict(data: Any, source: str) -> TransistorCircuit:
    if not isinstance(data, dict):
        raise TransistorFormatError(f"{source}: a transistor circuit is a JSON object, got {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise TransistorFormatError(f"{source}: field 'format' must be '{FORMAT}', got {data.get('format')!r}")
    version = _field(data, "version", int, source)
    if version != FORMAT_VERSION:
        raise TransistorFormatError(f"{source}: field 'version' is {version}; this cktflow reads version {FORMAT_VERSION}")
    unknown = set(data) - {"format", "version", "name", "pdk", "description", "conditions", "params", "body"}
    if unknown:
        raise TransistorFormatError(f"{source}: unknown field(s) {', '.join(sorted(unknown))}")
    name, pdk = _field(data, "name", str, source), _field(data, "pdk", str, source)
    body = _field(data, "body", list, source)
    if not all(isinstance(ln, str) for ln in body):
        raise TransistorFormatError(f"{source}: field 'body' must be a list of netlist lines")
    conditions = {k: _field(data["conditions"], k, float, f"{source}: conditions")
                  for k in _field(data, "conditions", dict, source)}
    if set(conditions) - set(CONDITION_KEYS):
        raise TransistorFormatError(f"{source}: field 'conditions': unknown key(s) "
                                    f"{', '.join(sorted(set(conditions) - set(CONDITION_KEYS)))}")
    params = []
    for i, p in enumerate(_field(data, "params", list, source)):
        where = f"{source}: params[{i}]"
        if not isinstance(p, dict):
            raise TransistorFormatError(f"{where} must be an object")
        grid = p.get("grid")
        if grid is not None and (isinstance(grid, bool) or not isinstance(grid, (int, float))):
            raise TransistorFormatError(f"{where}: field 'grid' must be a number or null")
        params.append(SizingParam(_field(p, "name", str, where).lower(), _field(p, "value", float, where),
                                  _field(p, "unit", str, where), _field(p, "min", float, where),
                                  _field(p, "max", float, where), grid, tuple(p.get("sizes") or ())))
        why = params[-1].problem(params[-1].value)
        if why:
            raise TransistorFormatError(f"{where}: {why}")
    # the body is untrusted text: vet it as a netlist, and its parameters must be those it uses
    text = "* " + name + "\n" + "\n".join(f".param {p.name}={spice_value(p.value)}" for p in params) + "\n" \
        + "\n".join(body) + "\n"
    parsed = read_subckt(text, source=f"{source}: body", pdk=pdk, name=name)
    if {p.name for p in parsed.params} != {p.name for p in params}:
        raise TransistorFormatError(f"{source}: field 'params' does not match the parameters the body uses "
                                    f"({', '.join(p.name for p in parsed.params)})")
    for i, p in enumerate(params):
        # bounds may be tighter than the PDK's (a template's choice), never looser
        pdk_p = parsed.param(p.name)
        if pdk_p.sizes and pdk_p.sizes[0].count(".") and not pdk_p.low <= p.low < p.high <= pdk_p.high:
            raise TransistorFormatError(f"{source}: params[{i}]: bounds of {p.name} [{p.low:g}, {p.high:g}] "
                                        f"leave the PDK's [{pdk_p.low:g}, {pdk_p.high:g}]")
    return TransistorCircuit(name.lower(), pdk, "\n".join(body), tuple(params), conditions,
                             data.get("description", ""), source)
