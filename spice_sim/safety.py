"""Check netlist text from outside before it reaches ngspice.

ngspice can run shell commands (`.control` ... `shell`), read any file (`.include`, `.lib`,
XSPICE code models such as `filesource`) and treats `*#` comment lines as commands. A netlist read
from a file is therefore parsed here first: only circuit elements and an allow-list of
circuit-description directives pass; `.include`/`.lib` pass only for files inside the allowed
folders (the PDK); analysis and output directives are dropped because the testbench adds its own.
What reaches ngspice is rebuilt from the accepted lines alone (comments removed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UnsafeNetlistError

__all__ = ["CheckedNetlist", "check_netlist"]

_ALLOWED_DIRECTIVES = {".subckt", ".ends", ".model", ".param", ".temp", ".option", ".options", ".global",
                       ".func", ".ic", ".nodeset", ".title", ".csparam"} - {".csparam"}
_DROPPED_DIRECTIVES = {".ac", ".dc", ".op", ".tran", ".noise", ".pz", ".tf", ".sens", ".disto", ".sp",
                       ".print", ".plot", ".probe", ".save", ".four", ".meas", ".measure", ".width", ".end"}
_INCLUDE_DIRECTIVES = {".include", ".inc", ".lib"}
_REFUSED_WHY = {".control": "runs simulator commands (including shell)", ".endc": "ends a .control block",
                ".exec": "runs simulator commands", ".spiceinit": "runs simulator commands"}
# Elements and how many leading node tokens they have (None: all tokens up to the model/subckt name).
_NODE_COUNT = {"r": 2, "c": 2, "l": 2, "v": 2, "i": 2, "b": 2, "d": 2, "g": 4, "e": 4, "f": 2, "h": 2,
               "q": 3, "j": 3, "m": 4, "z": 3, "t": 4, "o": 4, "u": 3, "w": 2, "s": 4, "x": None, "k": 0,
               "p": None, "y": None, "n": None}
_REFUSED_ELEMENTS = {"a": "XSPICE code-model instances can read and write files"}
#: Bounds on a netlist from outside, so that checking and simulating it is bounded in time and memory
#: (a million-element netlist took ~25 s and ~1.3 GB here; an op-amp has tens of elements).
MAX_LINES = 200_000
MAX_CHARS = 16 * 2**20


@dataclass
class CheckedNetlist:
    title: str
    lines: list[str]                       # accepted lines, normalised, comments removed
    nodes: set[str] = field(default_factory=set)
    sources: dict[str, tuple[str, str]] = field(default_factory=dict)   # V name -> (n+, n-)
    dropped: list[str] = field(default_factory=list)                   # notes for the user

    @property
    def body(self) -> str:
        return "\n".join(self.lines)

    def has_source_at(self, net: str) -> bool:
        net = net.lower()
        return any(net in pair for pair in self.sources.values())


def _strip_comment(line: str) -> str:
    # ngspice inline comments: ';' anywhere, '$ ' after whitespace
    line = line.split(";", 1)[0]
    line = re.split(r"\s\$\s?", line, maxsplit=1)[0]
    return line.rstrip()


def check_netlist(text: str, *, source: str = "<netlist>", allowed_dirs: tuple[Path, ...] = ()) -> CheckedNetlist:
    """Parse and vet netlist text; raise UnsafeNetlistError naming the file and line of the problem."""
    if len(text) > MAX_CHARS:
        raise UnsafeNetlistError(f"{source}:1: netlist of {len(text):,} characters; at most {MAX_CHARS:,} are read")
    raw = text.splitlines()
    if len(raw) > MAX_LINES:
        raise UnsafeNetlistError(f"{source}:{MAX_LINES + 1}: netlist of {len(raw):,} lines; at most {MAX_LINES:,} are read")
    allowed = tuple(Path(d).resolve() for d in allowed_dirs)
    # Join continuation lines ('+' at the start) while remembering where each logical line began.
    logical: list[tuple[int, str]] = []
    for no, line in enumerate(raw, start=1):
        if "\x00" in line:
            raise UnsafeNetlistError(f"{source}:{no}: NUL byte in netlist")
        stripped = line.strip()
        if stripped.startswith("*#"):
            raise UnsafeNetlistError(f"{source}:{no}: '*#' lines are executed by ngspice as commands; refused")
        if no == 1 and (stripped.startswith("*") or not _looks_like_element(stripped)):
            logical.append((no, "*TITLE* " + stripped.lstrip("*").strip()))
            continue
        if not stripped or stripped.startswith("*"):
            continue
        stripped = _strip_comment(stripped)
        if not stripped:
            continue
        if stripped.startswith("+"):
            if not logical or logical[-1][1].startswith("*TITLE*"):
                raise UnsafeNetlistError(f"{source}:{no}: continuation line '+' without a line to continue")
            logical[-1] = (logical[-1][0], logical[-1][1] + " " + stripped[1:].strip())
        else:
            logical.append((no, stripped))
    title = "netlist"
    out = CheckedNetlist(title=title, lines=[])
    ended = False
    for no, line in logical:
        if line.startswith("*TITLE* "):
            out.title = line[8:] or title
            continue
        if ended:
            break
        where = f"{source}:{no}"
        lower = line.lower()
        word = lower.split()[0]
        if word.startswith("."):
            if word in _REFUSED_WHY:
                raise UnsafeNetlistError(f"{where}: '{word}' {_REFUSED_WHY[word]}; refused")
            if word in _INCLUDE_DIRECTIVES:
                out.lines.append(_check_include(line, where, allowed))
                continue
            if word == ".end":
                ended = True
                continue
            if word in _DROPPED_DIRECTIVES:
                out.dropped.append(f"{where}: '{word}' dropped (the testbench sets the analysis)")
                continue
            if word not in _ALLOWED_DIRECTIVES:
                raise UnsafeNetlistError(f"{where}: directive '{word}' is not allowed in a netlist "
                                         f"(allowed: {', '.join(sorted(_ALLOWED_DIRECTIVES | _INCLUDE_DIRECTIVES))})")
            out.lines.append(line)
            continue
        letter = word[0]
        if letter in _REFUSED_ELEMENTS:
            raise UnsafeNetlistError(f"{where}: element '{line.split()[0]}': {_REFUSED_ELEMENTS[letter]}; refused")
        if letter not in _NODE_COUNT:
            raise UnsafeNetlistError(f"{where}: '{line.split()[0]}' is not a SPICE element or directive")
        if re.search(r"\b(shell|system|source|exec)\b\s*\(", lower):
            raise UnsafeNetlistError(f"{where}: function call reaching outside the simulation; refused")
        tokens = line.split()
        count = _NODE_COUNT[letter]
        if count is None:
            nodes = [t for t in tokens[1:-1] if "=" not in t]
        else:
            nodes = tokens[1:1 + count]
            if letter in "ge" and len(tokens) > 3 and tokens[3].lower() in ("value", "poly", "vol", "cur"):
                nodes = tokens[1:3]
        if letter == "v":
            out.sources[tokens[0].lower()] = tuple(n.lower() for n in tokens[1:3])
        out.nodes.update(n.lower() for n in nodes if n)
        out.lines.append(line)
    return out


def _looks_like_element(line: str) -> bool:
    tokens = line.split()
    return bool(tokens) and (tokens[0][0].lower() in _NODE_COUNT or tokens[0].startswith(".")) and len(tokens) >= 3


def _check_include(line: str, where: str, allowed: tuple[Path, ...]) -> str:
    parts = line.split(None, 1)
    if len(parts) < 2:
        raise UnsafeNetlistError(f"{where}: '{parts[0]}' without a file name")
    arg = parts[1].strip()
    m = re.match(r"""^(["']?)([^"'\s]+)\1(\s+\w+)?$""", arg)
    if not m:
        raise UnsafeNetlistError(f"{where}: cannot read the file name of '{line}'")
    path = Path(m.group(2)).expanduser()
    resolved = path.resolve()
    if not any(resolved == d or d in resolved.parents for d in allowed):
        places = ", ".join(str(d) for d in allowed) or "no folder"
        raise UnsafeNetlistError(f"{where}: '{parts[0]} {m.group(2)}' reads a file outside the PDK folder "
                                 f"({places}); refused")
    if not resolved.is_file():
        raise UnsafeNetlistError(f"{where}: included file {resolved} does not exist")
    return f"{parts[0]} {resolved}{m.group(3) or ''}"
