"""xschem schematic (.sch, file format 1.1 of xschem 2.8) with xschem's standard device symbols.

The placement comes from `layout.place`; this module only writes it in xschem's text format:
`C {devices/vccs.sym} ...` instances with the SPICE value as the `value` attribute, `N` wires,
`lab_pin.sym` net labels and `gnd.sym` grounds. Since xschem has no SPICE import, this is how a
generated circuit reaches a designer's xschem. `xschem_netlist` asks the real xschem to netlist a
file headless, which the round-trip test uses (and which a user can use to check an edited file).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import IO

from ..circuit import Circuit
from ..circuit.pdk import Pdk
from ..units import format_spice
from .layout import Schematic, place

__all__ = ["write", "write_schematic", "xschem_netlist", "XschemError", "SYMBOLS", "PORT_SYMBOLS", "GROUND_LABEL"]

#: xschem symbol per SPICE element letter (from xschem_library/devices).
SYMBOLS = {"R": "devices/res.sym", "C": "devices/capa.sym", "G": "devices/vccs.sym", "V": "devices/vsource.sym",
           "I": "devices/isource.sym"}
#: xschem port symbol per port name of an amplifier subcircuit (others: iopin).
PORT_SYMBOLS = {"inp": "devices/ipin.sym", "inn": "devices/ipin.sym", "out": "devices/opin.sym"}
#: gnd.sym names its net GND, which ngspice (like every SPICE) treats as the ground node.
GROUND_LABEL = "GND"


class XschemError(RuntimeError):
    """xschem is missing or could not netlist a schematic."""


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"' if any(ch in text for ch in ' ="{}') else text


def write_schematic(sch: Schematic, dest: IO[str]) -> None:
    """Write an already placed schematic."""
    out = ["v {xschem version=2.8.1 file_version=1.1}", "G {}", "V {}", "S {}", "E {}"]
    for t in sch.texts:
        text = t.text.replace("{", "(").replace("}", ")")
        out.append(f"T {{{text}}} {t.x} {t.y} 0 0 0.3 0.3 {{}}")
    for w in sch.wires:
        net = GROUND_LABEL if w.net == "0" else w.net
        out.append(f"N {w.x1} {w.y1} {w.x2} {w.y2} {{lab={net}}}")
    for s in sch.symbols:
        e = s.element
        if e.symbol:      # a PDK device: the PDK's own symbol and its attributes
            attrs = " ".join(f"{k}={_quote(v)}" for k, v in e.attrs)
            out.append(f"C {{{e.symbol}}} {s.x} {s.y} 0 {int(s.flip)} {{{attrs}}}")
            continue
        value = e.spec if e.value is None else format_spice(e.value)
        attrs = f"name={e.name} value={_quote(value)}"
        out.append(f"C {{{SYMBOLS[e.letter]}}} {s.x} {s.y} 0 {int(s.flip)} {{{attrs}}}")
    for k, p in enumerate(sch.ports, start=1):
        out.append(f"C {{{PORT_SYMBOLS.get(p.net, 'devices/iopin.sym')}}} {p.x} {p.y} 0 0 {{name=p{k} lab={p.net}}}")
    for k, g in enumerate(sch.grounds, start=1):
        out.append(f"C {{devices/gnd.sym}} {g.x} {g.y} 0 0 {{name=lg{k} lab={GROUND_LABEL}}}")
    for k, lb in enumerate(sch.labels, start=1):
        out.append(f"C {{devices/lab_pin.sym}} {lb.x} {lb.y} 0 {int(lb.text_right)} {{name=ln{k} lab={lb.net}}}")
    dest.write("\n".join(out) + "\n")


def write(c: Circuit, dest: IO[str], *, title: str = "circuit", pdk: Pdk | None = None) -> None:
    """Write the circuit, with its input source, as an xschem schematic."""
    write_schematic(place(c, pdk, title=title), dest)


def xschem_netlist(path: str | Path, *, timeout_s: float = 60.0) -> str:
    """Netlist a schematic with the installed xschem, headless, and return the SPICE text.

    xschem 2.8 needs an rcfile that sets `netlist_dir` to netlist without X (it crashes without
    one; shared/design/stack-notes.md), so each call gets a private rcfile and output folder.
    """
    exe = shutil.which("xschem")
    if exe is None:
        raise XschemError("xschem is not installed (Debian: apt-get install xschem)")
    path = Path(path).resolve()
    if not path.is_file():
        raise XschemError(f"{path}: no such schematic")   # xschem would netlist an empty one
    with tempfile.TemporaryDirectory(prefix="cktflow-xschem-") as tmp:
        rc = Path(tmp) / "xschemrc"
        outdir = Path(tmp) / "netlist"
        outdir.mkdir()
        rc.write_text(f"set netlist_dir {{{outdir}}}\nset netlist_type spice\n")
        try:
            proc = subprocess.run([exe, "-q", "-x", "-n", "-s", "-r", "--rcfile", str(rc), str(path)],
                                  cwd=tmp, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise XschemError(f"xschem did not netlist {path} within {timeout_s:g} s") from None
        produced = sorted(outdir.glob("*.spice"))
        if proc.returncode != 0 or not produced:
            raise XschemError(f"xschem could not netlist {path} (exit code {proc.returncode}): "
                              f"{(proc.stderr or proc.stdout).strip()[:500]}")
        return produced[0].read_text()
