"""Spectre netlists: write a circuit in Spectre syntax, and read back the Spectre subset that
cktflow writes and that OCB-style behavioural netlists use.

The OCB data was simulated in Spectre and many analog designers live in Cadence, so a circuit must
travel there; the importer exists so that a Spectre netlist (ours, or an OCB one with per-instance
subcircuits) can be measured by ngspice here. Import is a translation to SPICE text that then goes
through `spice_sim.check_netlist` like any other netlist from outside: nothing reaches ngspice
unchecked. Supported statements: comments (`//`, `*`), `\\` continuations, `simulator
lang=spectre`, `global`, `parameters` (numbers), `subckt`/`ends`, instances of resistor, capacitor,
inductor, vccs, vcvs, vsource, isource and of the file's own subcircuits, `save`, and one `ac`
analysis. Anything else is refused with its file and line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from string import Template
from typing import IO

import numpy as np
import yaml

from spice_sim import check_netlist

from ..circuit import Circuit, OCB_SWEEP, AcSweep, load_pdk, wrap_testbench
from ..circuit.pdk import Pdk
from ..resources import pdk_dir, templates_dir
from .elements import Element, circuit_elements
from .spice import header

__all__ = ["write", "SpectreImportError", "SpectreNetlist", "read", "to_spice_deck", "format_number"]


# ------------------------------------------------------------------------------------------------
# writing

@lru_cache(maxsize=None)
def _templates() -> dict[str, Template]:
    base = templates_dir() / "spectre"
    out = {k: Template(v) for k, v in yaml.safe_load((base / "elements.yaml").read_text()).items()}
    out["testbench_ac"] = Template((base / "testbench_ac.scs").read_text())
    out["analysis_ac"] = Template((base / "analysis_ac.scs").read_text())
    return out


def format_number(value: float) -> str:
    """A plain number Spectre and SPICE read the same way (no scale suffix: Spectre's M is mega)."""
    plain = repr(float(value)).removesuffix(".0")
    mantissa, _, exponent = np.format_float_scientific(value, unique=True, trim="-").partition("e")
    sci = f"{mantissa}e{int(exponent)}"
    return plain if value == 0 or 1e-4 <= abs(value) < 1e6 else sci


def _source_params(spec: str) -> dict[str, str]:
    """'DC 0 AC 1' -> {'dc': '0', 'mag': '1'} (SPICE source keywords to Spectre parameters)."""
    tokens = spec.split()
    out = {"dc": "0", "mag": "0"}
    for k, t in enumerate(tokens[:-1]):
        if t.upper() == "DC":
            out["dc"] = tokens[k + 1]
        elif t.upper() == "AC":
            out["mag"] = tokens[k + 1]
    return out


def _instance(e: Element) -> str:
    t = _templates()[e.letter]
    nets = {f"n{k + 1}": n for k, n in enumerate(e.nets)}
    if e.value is None:
        return t.substitute(name=e.name, **nets, **_source_params(e.spec))
    return t.substitute(name=e.name, value=format_number(e.value), **nets)


def write(c: Circuit, dest: IO[str], *, with_testbench: bool = True, title: str = "circuit",
          sweep: AcSweep = OCB_SWEEP, pdk: Pdk | None = None) -> None:
    """Write the circuit as a Spectre netlist; with the testbench: source, `ac` sweep and saves."""
    pdk = pdk or load_pdk()
    t = _templates()
    title = " ".join(str(title).split())     # one line: a newline in a title would start a statement of its own
    body = "\n".join(_instance(e) for e in circuit_elements(c, pdk, with_source=with_testbench, sweep=sweep))
    body = header(c, "//") + "\n" + body
    analysis = ""
    if with_testbench:
        analysis = t["analysis_ac"].substitute(
            fstart=format_number(sweep.fstart), fstop=format_number(sweep.fstop),
            points_per_decade=sweep.points_per_decade, input="in", output="out")
    dest.write(t["testbench_ac"].substitute(title=title, body=body, analysis=analysis,
                                            input="in", output="out"))


# ------------------------------------------------------------------------------------------------
# reading

class SpectreImportError(ValueError):
    """A Spectre netlist outside the supported subset; the message names the file and line."""


_SCALE = {"T": 1e12, "G": 1e9, "M": 1e6, "K": 1e3, "k": 1e3, "_": 1.0, "%": 1e-2, "m": 1e-3, "u": 1e-6,
          "n": 1e-9, "p": 1e-12, "f": 1e-15, "a": 1e-18}
_NUMBER = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([TGMKk_%munpfa]?)$")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.!<>\[\]]*$")
#: primitive -> (SPICE letter, number of terminals, parameter holding the value)
_PRIMITIVES = {"resistor": ("R", 2, "r"), "capacitor": ("C", 2, "c"), "inductor": ("L", 2, "l"),
               "vccs": ("G", 4, "gm"), "vcvs": ("E", 4, "gain"), "vsource": ("V", 2, None),
               "isource": ("I", 2, None)}

#: Limits of an imported AC sweep (the OCB testbench sweeps 11 decades at 100 points per decade).
_MAX_POINTS_PER_DECADE = 1000
_MAX_DECADES = 20

#: Analysis and control statements ("name kind ..."): `ac` sets the sweep, the others are ignored.
_ANALYSES = ("ac", "dc", "tran", "noise", "xf", "sp", "pz", "stb", "info", "options")

#: Source parameters that shape a transient waveform only; an AC sweep ignores them.
_TRANSIENT_SOURCE_PARAMS = ("type", "freq", "ampl", "sinedc", "sinephase", "delay", "period", "rise", "fall",
                            "width", "val0", "val1", "wave", "file")


@dataclass
class SpectreNetlist:
    """A Spectre netlist translated to SPICE element lines, with the sweep it asked for."""
    title: str
    spice_lines: list[str]
    sweep: AcSweep | None = None
    nodes: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    @property
    def spice_body(self) -> str:
        return "\n".join(self.spice_lines)


def _logical_lines(text: str, source: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for no, raw in enumerate(text.splitlines(), start=1):
        if "\x00" in raw:
            raise SpectreImportError(f"{source}:{no}: NUL byte in netlist")
        line = raw.split("//", 1)[0].rstrip()
        if line.lstrip().startswith("*") and pending is None:
            continue
        cont = line.endswith("\\")
        if cont:
            line = line[:-1]
        if pending is not None:
            pending = (pending[0], pending[1] + " " + line.strip())
        elif line.strip():
            pending = (no, line.strip())
        if not cont and pending is not None:
            out.append(pending)
            pending = None
    if pending is not None:
        raise SpectreImportError(f"{source}:{pending[0]}: the last line ends with a continuation '\\'")
    return out


def _number(text: str, params: dict[str, float], where: str) -> float:
    m = _NUMBER.match(text)
    if m:
        value = float(m.group(1)) * _SCALE.get(m.group(2), 1.0)
    elif text in params:
        value = params[text]
    else:
        raise SpectreImportError(f"{where}: cannot read '{text}' as a number (expressions are not supported)")
    if not math.isfinite(value):
        raise SpectreImportError(f"{where}: '{text}' is not a finite number")
    return value


def _assignments(tokens: list[str], where: str) -> dict[str, str]:
    out = {}
    for t in tokens:
        key, eq, value = t.partition("=")
        if not eq or not key or not value:
            raise SpectreImportError(f"{where}: expected name=value, got '{t}'")
        out[key] = value
    return out


def _check_name(name: str, where: str, what: str) -> str:
    if not _NAME.match(name):
        raise SpectreImportError(f"{where}: {what} '{name}' has characters cktflow does not accept")
    return name


def read(text: str, source: str = "<spectre>") -> SpectreNetlist:
    """Translate a Spectre netlist (the subset in the module docstring) to SPICE element lines."""
    lines = _logical_lines(text, source)
    # Parentheses are tokens of their own: "name(a b)", "name ( a b )" and "name (a b)" read the same.
    lines = [(no, ln.replace("(", " ( ").replace(")", " ) ")) for no, ln in lines]
    subckts = {ln.split()[1] for _, ln in lines if ln.split()[0] == "subckt" and len(ln.split()) > 1}
    title = "spectre netlist"
    for raw in text.splitlines():
        if raw.strip().startswith("//"):
            title = raw.strip().lstrip("/").strip() or title
            break
    out = SpectreNetlist(title=title, spice_lines=[])
    params: dict[str, float] = {}
    open_subckt: str | None = None
    for no, line in lines:
        where = f"{source}:{no}"
        tokens = line.split()
        word = tokens[0]
        if word == "simulator":
            opts = _assignments(tokens[1:], where)
            if opts.get("lang", "spectre") != "spectre":
                raise SpectreImportError(f"{where}: only 'simulator lang=spectre' is supported")
            continue
        if word in ("global", "save"):
            continue
        if len(tokens) > 1 and tokens[1] in _ANALYSES:
            continue   # read in the second pass below
        if word == "parameters":
            for k, v in _assignments(tokens[1:], where).items():
                params[k] = _number(v, params, where)
            continue
        if word == "subckt":
            if len(tokens) < 2:     # a bare `subckt` would fail below as an IndexError
                raise SpectreImportError(f"{where}: 'subckt' without a name")
            if open_subckt:
                raise SpectreImportError(f"{where}: nested subckt definitions are not supported")
            pins = [t for t in tokens[2:] if t not in "()"]
            open_subckt = _check_name(tokens[1], where, "subckt name")
            out.spice_lines.append(f".subckt {open_subckt} " + " ".join(_check_name(p, where, "pin") for p in pins))
            continue
        if word == "ends":
            if not open_subckt:
                raise SpectreImportError(f"{where}: 'ends' without a subckt")
            out.spice_lines.append(f".ends {open_subckt}")
            open_subckt = None
            continue
        if "(" not in tokens:
            raise SpectreImportError(f"{where}: statement '{word}' is not supported by the cktflow Spectre reader")
        if len(tokens) < 2 or tokens[1] != "(" or ")" not in tokens:     # a lone "(" has no tokens[1]
            raise SpectreImportError(f"{where}: expected 'name (terminals) master parameters'")
        close = tokens.index(")")
        name = _check_name(word, where, "instance name")
        nets = [_check_name(t, where, "net name") for t in tokens[2:close]]
        if len(tokens) <= close + 1:
            raise SpectreImportError(f"{where}: instance '{name}' names no master")
        master, assigns = tokens[close + 1], _assignments(tokens[close + 2:], where)
        if master in subckts:
            if assigns:
                raise SpectreImportError(f"{where}: subckt instance parameters are not supported")
            out.spice_lines.append(f"X{name} " + " ".join(nets) + f" {master}")
        elif master in _PRIMITIVES:
            out.spice_lines.append(_primitive(name, nets, master, assigns, params, where))
        else:
            raise SpectreImportError(f"{where}: unknown master '{master}' (supported: "
                                     f"{', '.join(sorted(_PRIMITIVES))} and this file's subckts)")
        if open_subckt is None:
            out.nodes.update(n.lower() for n in nets)
    for no, line in lines:
        tokens = line.split()
        if len(tokens) > 1 and tokens[1] == "ac":
            out.sweep = _sweep(tokens[2:], params, f"{source}:{no}")
        elif len(tokens) > 1 and tokens[1] in _ANALYSES:
            out.notes.append(f"{source}:{no}: '{tokens[1]}' statement ignored (cktflow runs an AC sweep)")
    if open_subckt:
        raise SpectreImportError(f"{source}: subckt '{open_subckt}' is never closed with 'ends'")
    return out


def _primitive(name: str, nets: list[str], master: str, assigns: dict[str, str], params: dict[str, float],
               where: str) -> str:
    letter, count, key = _PRIMITIVES[master]
    if len(nets) != count:
        raise SpectreImportError(f"{where}: a {master} has {count} terminals, '{name}' has {len(nets)}")
    spice_name = name if name[0].upper() == letter else letter + name
    if key is None:   # independent source
        dc = _number(assigns.pop("dc", "0"), params, where)
        mag = _number(assigns.pop("mag", "0"), params, where)
        phase = _number(assigns.pop("phase", "0"), params, where)
        for waveform_key in _TRANSIENT_SOURCE_PARAMS:   # shapes a transient only; no effect on AC
            assigns.pop(waveform_key, None)
        if assigns:
            raise SpectreImportError(f"{where}: {master} parameter(s) {', '.join(sorted(assigns))} not supported")
        return (f"{spice_name} {' '.join(nets)} DC {format_number(dc)} AC {format_number(mag)}"
                + (f" {format_number(phase)}" if phase else ""))
    if set(assigns) != {key}:
        raise SpectreImportError(f"{where}: a {master} takes exactly '{key}=value', got "
                                 f"{', '.join(sorted(assigns)) or 'nothing'}")
    return f"{spice_name} {' '.join(nets)} {format_number(_number(assigns[key], params, where))}"


def _sweep(tokens: list[str], params: dict[str, float], where: str) -> AcSweep:
    a = _assignments(tokens, where)
    unknown = set(a) - {"start", "stop", "dec"}
    if unknown or not {"start", "stop", "dec"} <= set(a):
        raise SpectreImportError(f"{where}: an ac analysis needs start=, stop= and dec= (and nothing else)")
    dec = _number(a["dec"], params, where)
    if dec != int(dec) or not 1 <= dec <= _MAX_POINTS_PER_DECADE:
        raise SpectreImportError(f"{where}: dec must be an integer from 1 to {_MAX_POINTS_PER_DECADE}, got {a['dec']}")
    start, stop = _number(a["start"], params, where), _number(a["stop"], params, where)
    # bounded, so that a hostile file cannot ask ngspice for billions of points (time and memory)
    if not 0 < start < stop or math.log10(stop / start) > _MAX_DECADES:
        raise SpectreImportError(f"{where}: the ac sweep needs 0 < start < stop and at most {_MAX_DECADES} "
                                 f"decades, got start={a['start']} stop={a['stop']}")
    return AcSweep(start, stop, int(dec))


def to_spice_deck(netlist: SpectreNetlist, *, input_net: str = "in", output_net: str = "out",
                  source: str = "<spectre>", pdk: Pdk | None = None) -> str:
    """A complete, checked ngspice AC deck for an imported netlist (adds a source if none drives the input)."""
    checked = check_netlist(f"* {netlist.title}\n" + netlist.spice_body, source=source, allowed_dirs=(pdk_dir(),))
    for net in (input_net, output_net):
        if net.lower() not in checked.nodes:
            raise SpectreImportError(f"{source}: the netlist has no node '{net}'")
    return wrap_testbench(checked.body, title=netlist.title, input_net=input_net, output_net=output_net,
                          add_source=not checked.has_source_at(input_net),
                          sweep=netlist.sweep or OCB_SWEEP, pdk=pdk)
