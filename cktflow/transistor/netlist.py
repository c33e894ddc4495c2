"""Check a transistor-level netlist against a PDK before anything reaches ngspice.

First spice_sim's safety check (no `.control`, no shell, `.include`/`.lib` only from the PDK's
installed folder), then the PDK's own rules, each refusal naming the file and line:
- every subcircuit instance names a subcircuit defined in the netlist or a device of the PDK;
  every MOSFET (`M`) line names a `.model` of the netlist (PDK transistors are subcircuits);
- a PDK device's W, L, nf and m lie inside the PDK's limits (and W, L on its grid). Sizes given as
  `{expression}` are checked when they are a parameter whose value is known (the netlist's own
  `.param` lines or `params`), else left to the caller's own checks of those parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from spice_sim.errors import NetlistError
from spice_sim.safety import CheckedNetlist, check_netlist

from ..technology import DeviceKind, DeviceSizeError, Technology

__all__ = ["check_transistor_netlist", "pdk_instances", "passive_area_um2", "PdkInstance", "spice_number",
           "logical_lines"]

_NUM = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)(meg|mil|[tgkmunpf])?[a-z]*$", re.I)
_SCALE = {None: 1.0, "t": 1e12, "g": 1e9, "meg": 1e6, "k": 1e3, "m": 1e-3, "u": 1e-6, "n": 1e-9,
          "p": 1e-12, "f": 1e-15, "mil": 25.4e-6}


def spice_number(text: str) -> float | None:
    """A SPICE number ('4', '0.5', '20u', '1meg'), or None when `text` is not one."""
    m = _NUM.match(text.strip())
    if not m:
        return None
    return float(m.group(1)) * _SCALE[m.group(2).lower() if m.group(2) else None]


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(line number, text) of every SPICE line: continuations joined, comments dropped."""
    out: list[tuple[int, str]] = []
    for no, raw in enumerate(text.splitlines(), start=1):
        s = raw.strip()
        if not s or s.startswith("*"):
            continue
        s = re.split(r"\s\$\s?|;", s, maxsplit=1)[0].rstrip()
        if s.startswith("+") and out:
            out[-1] = (out[-1][0], out[-1][1] + " " + s[1:].strip())
        elif s:
            out.append((no, s))
    return out


@dataclass(frozen=True)
class PdkInstance:
    name: str              # as written (not hierarchical)
    subckt: str | None     # the subcircuit it sits in (None: top level)
    device: DeviceKind
    sizes: dict[str, float]   # the sizes that could be resolved (w, l, nf, m)


def check_transistor_netlist(text: str, tech: Technology, *, source: str = "<netlist>",
                             params: dict[str, float] | None = None) -> CheckedNetlist:
    """Vet `text` for `tech` (a transistor PDK); raise UnsafeNetlistError / NetlistError naming the
    line, else return spice_sim's CheckedNetlist of the accepted lines."""
    tech.require_installed()
    checked = check_netlist(text, source=source, allowed_dirs=(tech.install_dir,))
    _scan(text, tech, source, params)
    return checked


def pdk_instances(text: str, tech: Technology, *, source: str = "<netlist>",
                  params: dict[str, float] | None = None) -> list[PdkInstance]:
    """Every instance of a PDK device in `text` with its resolved sizes (checked as above)."""
    return _scan(text, tech, source, params)


def passive_area_um2(text: str, tech: Technology, subckt: str, params: dict[str, float] | None = None) -> float:
    """W*L*m summed over the capacitors and resistors placed directly in subcircuit `subckt`."""
    total = 0.0
    for inst in _scan(text, tech, "<area>", params):
        if inst.subckt == subckt.lower() and inst.device.type in ("capacitor", "resistor"):
            s = inst.sizes
            if "w" in s and "l" in s:
                total += s["w"] * s["l"] * s.get("m", 1.0)
    return total


def _scan(text: str, tech: Technology, source: str, params: dict[str, float] | None) -> list[PdkInstance]:
    found: list[PdkInstance] = []
    inside: str | None = None
    lines = logical_lines(text)
    subckts = {ln.split()[1].lower() for _, ln in lines if ln.lower().startswith(".subckt") and len(ln.split()) > 1}
    models = {ln.split()[1].lower() for _, ln in lines if ln.lower().startswith(".model") and len(ln.split()) > 1}
    known = {k.lower(): float(v) for k, v in (params or {}).items()}
    for _, ln in lines:
        if ln.lower().startswith(".param"):
            body = re.sub(r"\s*=\s*", "=", ln[6:])
            for tok in body.split():
                if "=" in tok:
                    k, v = tok.split("=", 1)
                    val = spice_number(v.strip("{}'\""))
                    if val is not None:
                        known.setdefault(k.lower(), val)
    for no, ln in lines:
        where = f"{source}:{no}"
        toks = re.sub(r"\s*=\s*", "=", ln).split()
        letter = toks[0][0].lower()
        if toks[0].lower() == ".subckt" and len(toks) > 1:
            inside = toks[1].lower()
        elif toks[0].lower() == ".ends":
            inside = None
        if letter == "x":
            plain = [t for t in toks[1:] if "=" not in t]
            if not plain:
                raise NetlistError(f"{where}: '{toks[0]}' names no subcircuit")
            name = plain[-1].lower()
            if name in subckts:
                continue
            try:
                dev = tech.device(name)
            except KeyError:
                raise NetlistError(f"{where}: '{toks[0]}': unknown model or subcircuit '{plain[-1]}' "
                                   f"(not defined in the netlist, not a {tech.name} device: "
                                   f"{', '.join(d.model for d in tech.devices.values())})") from None
            if len(plain) - 1 != len(dev.terminals):
                raise NetlistError(f"{where}: '{toks[0]}': {dev.model} has {len(dev.terminals)} terminals "
                                   f"({' '.join(dev.terminals)}), the line gives {len(plain) - 1}")
            sizes = {}
            for tok in toks[1:]:
                if "=" not in tok:
                    continue
                k, v = tok.split("=", 1)
                k = k.lower()
                if k == "mult":
                    k = "m"
                if k not in dev.limits:
                    continue
                val = spice_number(v)
                if val is None:
                    ref = v.strip("{}'\" ").lower()
                    val = known.get(ref)
                if val is not None:
                    sizes[k] = val
            try:
                dev.check(toks[0], **sizes)
            except DeviceSizeError as exc:
                unit = " (W and L are in um: no 'u' suffix)" if any(s < 1e-3 for s in sizes.values()) else ""
                raise NetlistError(f"{where}: {exc}{unit}") from None
            found.append(PdkInstance(toks[0].lower(), inside, dev, sizes))
        elif letter == "m":
            if len(toks) < 6:
                raise NetlistError(f"{where}: '{toks[0]}' needs drain gate source bulk and a model")
            model = toks[5].lower()
            if model not in models:
                hint = ""
                try:
                    hint = f" ({tech.device(model).model} is a subcircuit: write it as an X instance)"
                except KeyError:
                    pass
                raise NetlistError(f"{where}: '{toks[0]}': unknown model '{toks[5]}'{hint}")
    return found
