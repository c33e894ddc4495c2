"""Circuit -> ngspice netlist, through the PDK description and the templates in templates/.

The netlist text comes from the template files; this module only decides which template each
device uses and which nets its pins join (ocb-generator.md section 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from string import Template

import yaml

from ..resources import templates_dir
from ..units import format_spice
from .basis import Connection
from .ir import Circuit
from .pdk import Pdk, load_pdk
from .validity import InvalidCircuitError, analyse

__all__ = ["AcSweep", "OCB_SWEEP", "netlist_body", "testbench", "wrap_testbench", "device_lines",
           "follower_testbench", "wrap_follower"]


@dataclass(frozen=True)
class AcSweep:
    """A logarithmic AC sweep: `points_per_decade` points per decade from fstart to fstop (Hz)."""
    fstart: float = 1.0
    fstop: float = 100e9
    points_per_decade: int = 100

    @property
    def version(self) -> str:
        return f"ac-dec{self.points_per_decade}-{self.fstart:g}-{self.fstop:g}"


#: The OCB testbench sweep: 1 Hz - 100 GHz, 100 points/decade (1,101 points).
OCB_SWEEP = AcSweep()


@lru_cache(maxsize=None)
def _templates(folder: str) -> dict[str, Template]:
    base = templates_dir() / folder
    lines = yaml.safe_load((base / "devices.yaml").read_text())
    out = {k: Template(v) for k, v in lines.items()}
    out["testbench_ac"] = Template((base / "testbench_ac.cir").read_text())
    out["source"] = Template((base / "source.cir").read_text().strip())
    out["testbench_follower"] = Template((base / "testbench_follower.cir").read_text())
    return out


def device_lines(c: Circuit, pdk: Pdk) -> list[tuple[int, str]]:
    """(node index, SPICE line) for every device of every node, in node order."""
    s = analyse(c, pdk)
    if s.problems:
        raise InvalidCircuitError(s.problems)
    t = _templates(pdk.templates)
    stage_in = {st: s.nets[([s.input] + s.stages)[k]] for k, st in enumerate(s.stages)}
    out: list[tuple[int, str]] = []
    for i, node in enumerate(c.nodes):
        kind = node.kind
        if not kind.devices:
            continue
        if i in stage_in:
            a, b = stage_in[i], s.nets[i]
        else:
            a, b = s.nets[c.predecessors(i)[0]], s.nets[c.successors(i)[0]]
            if kind.feedback:
                a, b = b, a
        name = str(i)
        v = node.values

        def line(key, **kw):
            out.append((i, t[key].substitute(name=name, **kw)))

        if kind.connection == Connection.SERIES:
            mid = f"x{i}"
            line("resistor", a=a, b=mid, value=format_spice(v["R"]))
            line("capacitor", a=mid, b=b, value=format_spice(v["C"]))
        else:
            if "R" in v:
                line("resistor", a=a, b=b, value=format_spice(v["R"]))
            if "C" in v:
                line("capacitor", a=a, b=b, value=format_spice(v["C"]))
        if kind.has_gm:
            line("vccs", a=a, b=b, value=format_spice(kind.gm_sign * v["gm"]))
            line("gm_r0", a=a, b=b, value=format_spice(pdk.r0))
            line("gm_c0", a=a, b=b, value=format_spice(pdk.c0))
    return out


def netlist_body(c: Circuit, pdk: Pdk | None = None) -> str:
    """The circuit's element lines (no source, no analysis), one device per line."""
    pdk = pdk or load_pdk()
    return "\n".join(line for _, line in device_lines(c, pdk))


def one_line(title: str) -> str:
    """A title as one line: a newline in it would start a SPICE line of its own (a `.control`
    block, say) in every deck written with it."""
    return " ".join(str(title).split())


def wrap_testbench(body: str, *, title: str = "circuit", input_net: str = "in", output_net: str = "out",
                   add_source: bool = True, sweep: AcSweep = OCB_SWEEP, pdk: Pdk | None = None) -> str:
    """A complete AC deck around element lines: the input source (unless present) and the sweep."""
    pdk = pdk or load_pdk()
    t = _templates(pdk.templates)
    source = t["source"].substitute(input=input_net) if add_source else ""
    return t["testbench_ac"].substitute(
        title=one_line(title), body=body, source=source, input=input_net, output=output_net,
        points_per_decade=sweep.points_per_decade, fstart=format_spice(sweep.fstart),
        fstop=format_spice(sweep.fstop))


def testbench(c: Circuit, sweep: AcSweep = OCB_SWEEP, pdk: Pdk | None = None, title: str = "circuit") -> str:
    """The circuit inside the OCB AC testbench, ready for ngspice."""
    pdk = pdk or load_pdk()
    return wrap_testbench(netlist_body(c, pdk), title=title, sweep=sweep, pdk=pdk)


def wrap_follower(body: str, *, title: str = "circuit", input_net: str = "in", output_net: str = "out",
                  pdk: Pdk | None = None) -> str:
    """The unity-gain follower deck around element lines (which must not drive the input net
    themselves): a spice_sim SimJob `follower` template, whose $sign, $tstop, $tstep and $vstep the
    simulation fills in once the AC sweep has told it the loop's sign and time scale."""
    pdk = pdk or load_pdk()
    return _templates(pdk.templates)["testbench_follower"].substitute(
        title=one_line(title), body=body, input=input_net, output=output_net)


def follower_testbench(c: Circuit, pdk: Pdk | None = None, title: str = "circuit") -> str:
    """The circuit closed as a unity-gain follower for its step response (see wrap_follower)."""
    pdk = pdk or load_pdk()
    return wrap_follower(netlist_body(c, pdk), title=title, pdk=pdk)
