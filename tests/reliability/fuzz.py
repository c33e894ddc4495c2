"""Fuzzing the readers of untrusted input with hypothesis: the spec parser, the circuit JSON loader,
the netlist safety checker, the Spectre importer and the dataset importer (JSONL and Parquet).

Every target has the same oracle:
- the library function raises only its documented error type (SpecError, CircuitFormatError,
  UnsafeNetlistError, SpectreImportError/UnsafeNetlistError, ValueError) and nothing else;
- what it accepts, serialised again and read again, is accepted again and reads the same;
- a share of the cases also goes through the command line (click's CliRunner, in this process):
  the exit code is 0/1 or 2, never 3, no traceback is printed, and a refusal names the file (and
  the line, for text formats).

Inputs are a mix of raw random text, documents built from the format's grammar (valid and
almost-valid), and those documents mutated at the text level; hostile fragments (YAML anchors,
NaN/inf, huge numbers, deep nesting, NUL bytes, Unicode line separators) are drawn often, because
plain random text rarely gets past the first line of a parser. Failures are counted, not raised,
so one run reports how many of its cases failed (hypothesis' shrinking is off for the same reason;
the examples kept in the Outcome are the raw failing inputs).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
import traceback
from pathlib import Path

import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hseed
from hypothesis import strategies as st

from .outcome import Outcome

_HOSTILE_TEXT = ["\x00", "\r", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029", "\ufeff", "\t", ";", "$", "*#",
                 "\\", "+", "{", "}", "[", "]", "&a", "*a", "!!python/object/apply:os.system ['id']", "nan", "inf",
                 "-inf", "1e999", "1e-999", "9" * 400, "..", "../../", "/etc/passwd", "~", "'", '"', "\n+ .control",
                 "\n.endc", "İ", "K", "ß", "𝔸", "\udcff" if False else "\ufffd"]


def _settings(n: int):
    # no example database (nothing written beside the tests), no shrinking (failures are counted),
    # no deadline (the machine is shared: a slow case is not a failure here)
    return settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck))


def _run(strategy, check, n: int, seed: int) -> None:
    @_settings(n)
    @hseed(seed)
    @given(strategy)
    def runner(x):
        check(x)
    runner()


def _mutate(draw, text: str) -> str:
    """A few text-level edits: insert hostile fragments or random text, delete or duplicate a slice."""
    for _ in range(draw(st.integers(0, 3))):
        if not text:
            text = draw(st.text(max_size=20))
            continue
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 20)))
        op = draw(st.sampled_from(["insert", "hostile", "delete", "dup"]))
        if op == "insert":
            text = text[:i] + draw(st.text(max_size=8)) + text[i:]
        elif op == "hostile":
            text = text[:i] + draw(st.sampled_from(_HOSTILE_TEXT)) + text[i:]
        elif op == "delete":
            text = text[:i] + text[j:]
        else:
            text = text[:j] + text[i:j] + text[j:]
    return text


def _unexpected(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_exception(exc)[-3:])


@contextlib.contextmanager
def _workdir():
    with tempfile.TemporaryDirectory(prefix="cktfuzz-") as d:
        yield Path(d)


def _cli(args: list[str]):
    from click.testing import CliRunner

    from cktflow.cli.main import main
    return CliRunner().invoke(main, args, catch_exceptions=True)


def _cli_refusal_ok(result, path: Path, want_line: bool) -> str | None:
    """None when a CLI refusal is well-formed; else what is wrong with it."""
    text = result.output + (result.stderr if hasattr(result, "stderr") else "")
    if "Traceback" in text:
        return "a traceback reached the user"
    if result.exit_code != 2:
        return f"exit code {result.exit_code} (want 2)"
    if str(path) not in text:
        return "the message does not name the file"
    if want_line and not re.search(re.escape(str(path)) + r":\d+", text):
        return "the message does not name the line"
    return None


def _cli_case(out: Outcome, path: Path, text: str, args: list[str], names: Path | None = None,
              want_line: bool = False, ok_codes: tuple[int, ...] = ()) -> None:
    """Write `text` to `path`, run the command line, and check a refusal (any exit code not in
    ok_codes): exit 2, no traceback, the message naming `names` (default: path) and the line."""
    try:
        path.write_text(text, encoding="utf-8")
    except (UnicodeEncodeError, ValueError):   # lone surrogates: no file can hold them as UTF-8
        return
    res = _cli(args)
    if res.exit_code in ok_codes:
        return
    problem = _cli_refusal_ok(res, names or path, want_line=want_line)
    if problem:
        out.fail(f"CLI: {problem}: {res.output[-300:]!r} for {text[:200]!r}")


_CRASHED = object()


def _call(out: Outcome, text, fn, errors: tuple, where: str):
    """fn()'s value; None for a refusal by one of the documented `errors` (whose message must match
    the regex `where`: file and line); _CRASHED, counted as a failure, for any other exception."""
    try:
        return fn()
    except errors as exc:
        if not re.match(where, str(exc)):
            out.fail(f"refusal without file:line: {exc!r} for {text[:200]!r}")
    except BaseException as exc:   # noqa: BLE001 - anything else is a finding
        out.fail(f"{_unexpected(exc)} for {text[:300]!r}")
        return _CRASHED
    return None


# ------------------------------------------------------------------------------------------------
# specs

def _si_value():
    number = st.one_of(st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                       st.sampled_from(["1e999", "-1e999", "nan", "inf", ".5", "5.", "1e-320", "0", "-0", "9" * 40]))
    prefix = st.sampled_from(["", "", "k", "M", "Meg", "G", "m", "u", "µ", "n", "p", "f", "T", "x"])
    unit = st.sampled_from(["", "", "dB", "Hz", "deg", "%", "s", "bool", "V"])
    return st.one_of(st.tuples(number, prefix, unit).map("".join),
                     st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.booleans(), st.none(),
                     st.text(max_size=10), st.lists(st.integers(), max_size=3))


@st.composite
def spec_texts(draw):
    from spice_sim.measure import METRIC_UNITS
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.text(max_size=200))
    if kind == 1:      # hostile YAML constructs
        return draw(st.sampled_from([
            "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\ntargets: {gain_db: {min: 1}}\nname: *c\n",
            "? [a, b]\n: 1\ntargets: {gain_db: {min: 1}}\n",
            "targets:\n  ? {x: 1}\n  : {min: 1}\n",
            "targets: {gain_db: {? [min] : 1}}\n",
            "[" * 5000 + "]" * 5000, "{a: " * 3000 + "1" + "}" * 3000,
            "targets: !!python/object/apply:os.system ['touch pwned']\n",
            "targets: {gain_db: {min: !!float nan}}\n", "targets: {gain_db: {min: .inf}}\n",
            "targets: {gain_db: {min: 60dB}}\ntargets: {ugf_hz: {min: 1MHz}}\n",
            "\ufefftargets: {gain_db: {min: 60}}\n", "targets: {gain_db: {min: 60}}\n\x00",
            "name: &x [*x]\ntargets: {gain_db: {min: 1}}\n", "%YAML 1.1\n---\ntargets: {gain_db: {min: 1}}\n...\n---\nx: 1\n",
        ]))
    metric = st.one_of(st.sampled_from(list(METRIC_UNITS)), st.text(max_size=8))
    bound = st.one_of(
        st.dictionaries(st.sampled_from(["min", "max", "min", "max", "typ", ""]), _si_value(), max_size=3),
        st.booleans(), _si_value())
    doc = {}
    if draw(st.booleans()):
        doc["targets"] = draw(st.dictionaries(metric, bound, max_size=5))
    for key in ("name", "objective", "implicit", "description"):
        if draw(st.integers(0, 3)) == 0:
            doc[key] = draw(st.one_of(st.text(max_size=10), st.sampled_from(["max_margin", "min_total_gm"]),
                                      st.booleans(), st.integers(), st.none()))
    if draw(st.integers(0, 5)) == 0:
        doc[draw(st.text(max_size=6))] = draw(_si_value())
    text = yaml.safe_dump(doc, allow_unicode=draw(st.booleans()), default_flow_style=draw(st.booleans()))
    return _mutate(draw, text) if kind >= 6 else text


def fuzz_spec(n: int, seed: int = 0, cli_every: int = 25) -> Outcome:
    """parse_spec raises only SpecError; an accepted spec dumped with to_dict reads back equal;
    `cktflow verify --spec` refuses a bad spec with exit 2 naming file and line."""
    from cktflow.spec import SpecError, parse_spec
    out = Outcome("fuzz: spec parser (parse_spec, CLI --spec)")
    with _workdir() as wd:
        def check(text):
            out.cases += 1
            spec = _call(out, text, lambda: parse_spec(text, source="fuzz.yaml"), (SpecError,), r"fuzz\.yaml:\d+: ")
            if spec is _CRASHED:
                return
            if spec is not None:
                try:
                    again = parse_spec(yaml.safe_dump(spec.to_dict()), source="again.yaml")
                    if again != spec:
                        out.fail(f"round trip changed the spec: {spec} -> {again} for {text[:200]!r}")
                except BaseException as exc:   # noqa: BLE001
                    out.fail(f"round trip refused: {_unexpected(exc)} for {text[:200]!r}")
            if cli_every and out.cases % cli_every == 0:
                path = wd / f"spec{out.cases}.yaml"
                _cli_case(out, path, text, ["verify", "--spec", str(path), str(wd / "missing.json")],
                          names=path if spec is None else wd / "missing.json", want_line=spec is None)
        _run(spec_texts(), check, n, seed)
    out.scale = f"{n:,} cases, 1 in {cli_every} also through the CLI"
    return out.done()


# ------------------------------------------------------------------------------------------------
# circuit JSON

def _junk():
    return st.one_of(st.none(), st.booleans(), st.integers(-3, 40), st.integers(), st.floats(allow_nan=True),
                     st.text(max_size=5), st.lists(st.integers(0, 5), max_size=3),
                     st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                     st.sampled_from([10**400, -10**400, 1e308, float("inf"), float("nan"), 2**63]))


@st.composite
def circuit_dicts(draw):
    from cktflow.circuit import OcbGenerator
    if draw(st.booleans()):     # a real generated circuit, then edited
        c = OcbGenerator(seed=draw(st.integers(0, 2**16))).take(1)[0]
        d = c.to_dict()
        for _ in range(draw(st.integers(0, 3))):
            where = draw(st.sampled_from(["type", "pos", "value", "edge", "drop_edge", "add_edge", "field"]))
            if not (isinstance(d.get("nodes"), list) and isinstance(d.get("edges"), list)):
                break       # an earlier edit replaced a whole field
            if where in ("type", "pos") and d["nodes"]:
                node = draw(st.sampled_from(d["nodes"]))
                if not isinstance(node, dict):
                    continue
                node[where] = draw(_junk())
            elif where == "value" and d["nodes"]:
                node = draw(st.sampled_from(d["nodes"]))
                if not isinstance(node, dict) or not isinstance(node.get("values"), dict):
                    continue
                node["values"][draw(st.sampled_from(["R", "C", "gm", "L", ""]))] = draw(_junk())
            elif where == "edge" and d["edges"]:
                d["edges"][draw(st.integers(0, len(d["edges"]) - 1))] = draw(_junk())
            elif where == "drop_edge" and d["edges"]:
                d["edges"].pop(draw(st.integers(0, len(d["edges"]) - 1)))
            elif where == "add_edge":
                d["edges"].append([draw(st.integers(-1, len(d["nodes"]) + 1)), draw(st.integers(-1, len(d["nodes"])))])
            else:
                d[draw(st.sampled_from(["name", "meta", "x", "nodes", "edges"]))] = draw(_junk())
        return d
    node = st.fixed_dictionaries({"type": st.one_of(st.integers(0, 25), _junk()),
                                  "pos": st.one_of(st.integers(0, 7), _junk())},
                                 optional={"values": st.one_of(st.dictionaries(
                                     st.sampled_from(["R", "C", "gm", "x"]),
                                     st.one_of(st.floats(1e-15, 1e9), _junk()), max_size=3), _junk()),
                                     "extra": _junk()})
    nodes = draw(st.lists(node, max_size=8))
    edges = draw(st.lists(st.one_of(st.lists(st.integers(-1, 8), min_size=2, max_size=2), _junk()), max_size=10))
    return {"nodes": nodes, "edges": edges}


@st.composite
def circuit_texts(draw):
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.text(max_size=200))
    if kind == 1:
        return draw(st.sampled_from(["[" * 100000 + "]" * 100000, '{"nodes": ' * 5000 + "1" + "}" * 5000,
                                     '{"nodes": [], "edges": [], "nodes": 5}', "1" * 5000, "NaN", "null", '"x"',
                                     '{"nodes": [{"type": 2, "pos": 2, "values": {"R": 1e999}}], "edges": []}',
                                     '{"nodes": [{"type": 2, "pos": 2, "values": {"gm": -Infinity}}], "edges": []}']))
    text = json.dumps(draw(circuit_dicts()))
    return _mutate(draw, text) if kind >= 7 else text


def fuzz_circuit_json(n: int, seed: int = 0, cli_every: int = 25) -> Outcome:
    """Circuit.from_json raises only CircuitFormatError; validity_problems never raises on what it
    accepts; accepted circuits survive to_json/from_json with the same canonical hash; `cktflow
    export` of the file exits 0 or 2 (naming the file)."""
    from cktflow.circuit import Circuit, CircuitFormatError, validity_problems
    out = Outcome("fuzz: circuit JSON loader (Circuit.from_json, CLI export)")
    with _workdir() as wd:
        def check(text):
            out.cases += 1
            circuit = None
            try:
                circuit = Circuit.from_json(text)
                validity_problems(circuit)
            except CircuitFormatError:
                pass
            except BaseException as exc:   # noqa: BLE001
                out.fail(f"{_unexpected(exc)} for {text[:300]!r}")
                return
            if circuit is not None:
                try:
                    again = Circuit.from_json(circuit.to_json())
                    # compared as JSON text: NaN device values are legal in the IR (validity refuses them)
                    if again.to_json() != circuit.to_json() or again.canonical_hash() != circuit.canonical_hash():
                        out.fail(f"round trip changed the circuit: {text[:300]!r}")
                except BaseException as exc:   # noqa: BLE001
                    out.fail(f"round trip refused: {_unexpected(exc)} for {text[:300]!r}")
            if cli_every and out.cases % cli_every == 0:
                path = wd / f"c{out.cases}.json"
                _cli_case(out, path, text, ["export", "--format", "spice", "-o", str(wd / f"c{out.cases}.cir"),
                                            str(path)], ok_codes=(0,))
        _run(circuit_texts(), check, n, seed)
    out.scale = f"{n:,} cases, 1 in {cli_every} also through the CLI"
    return out.done()


# ------------------------------------------------------------------------------------------------
# netlists

_ELEMENT_LETTERS = "rclvibdgefhqjmztouwsxkpyna"
_DIRECTIVES = [".subckt", ".ends", ".model", ".param", ".temp", ".option", ".options", ".global", ".func", ".ic",
               ".nodeset", ".title", ".csparam", ".ac", ".dc", ".op", ".tran", ".print", ".save", ".meas",
               ".measure", ".end", ".control", ".endc", ".exec", ".spiceinit", ".include", ".inc", ".lib",
               ".endl", ".shell", ".wrdata", ".write", ".probe", ".if", ".else", ".endif", ".osdi", ".lib"]
_COMMANDS = ["shell", "wrdata", "write", "source", "exec", "echo", "codemodel", "load", "set", "setcs",
             "sourcepath", "cd", "listing", "meas", "print", "run", "quit", "alter", "altermod", "rusage"]


def _paths(pdk: Path, outside_link: Path):
    return st.sampled_from([str(pdk / "ocb_behavioural.yaml"), str(pdk), str(pdk / "missing.lib"),
                            str(pdk / ".." / "pyproject.toml"), "../../../../etc/passwd", "/etc/passwd",
                            "~/.bashrc", str(outside_link), f'"{pdk / "ocb_behavioural.yaml"}"',
                            f"'{pdk / 'ocb_behavioural.yaml'}' tt", "models.lib", "/dev/zero", "/proc/self/environ"])


@st.composite
def netlist_texts(draw, pdk: Path, outside_link: Path):
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=300))
    token = st.one_of(st.sampled_from(["in", "out", "0", "gnd", "n1", "1k", "1e999", "nan", "inf", "{x}", "dc", "ac",
                                       "value={v(in)*2}", "V=shell(ls)", "poly(1)", "vol='1'", "file=/etc/passwd",
                                       "m=1", "filesource", "d_source", "in;x", "$", "$x", "//", "=", "(", ")"]),
                      st.text(alphabet="abcxyz019_.=(){}", min_size=1, max_size=6))
    lines = [draw(st.sampled_from(["* title", "", ".control", "R1 in out 1k", "title line"]))]
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.integers(0, 9))
        if kind <= 3:
            letter = draw(st.sampled_from(_ELEMENT_LETTERS + _ELEMENT_LETTERS.upper()))
            toks = draw(st.lists(token, max_size=6))
            lines.append(" ".join([letter + draw(st.text(alphabet="0123abc", max_size=3))] + toks))
        elif kind == 4:
            d = draw(st.sampled_from(_DIRECTIVES))
            if d in (".include", ".inc", ".lib"):
                lines.append(f"{d} {draw(_paths(pdk, outside_link))}")
            else:
                lines.append(" ".join([d] + draw(st.lists(token, max_size=4))))
        elif kind == 5:
            lines.append(draw(st.sampled_from(["*", "*#", "+", "+ ", ";", "$ ", "//"]))
                         + draw(st.sampled_from(_COMMANDS + _DIRECTIVES)) + " " + " ".join(draw(st.lists(token, max_size=3))))
        elif kind == 6:
            lines.append(" ".join(draw(st.lists(st.sampled_from(_COMMANDS), min_size=1, max_size=3))
                                  + draw(st.lists(token, max_size=3))))
        elif kind == 7:
            lines.append(draw(st.text(max_size=30)))
        else:
            lines.append(draw(st.sampled_from(["", " ", "\t", "+ .control", "+ shell rm x", ".end", ".endc"])))
    sep = draw(st.sampled_from(["\n", "\n", "\r\n", "\r", "\x0b", "\u2028"]))
    text = sep.join(lines)
    return _mutate(draw, text) if draw(st.integers(0, 3)) == 0 else text


def _netlist_line_ok(line: str, allowed: tuple[Path, ...]) -> str | None:
    """The checker's own rules, restated: what may an accepted line be?"""
    from spice_sim import safety
    if "\x00" in line or any(c in line for c in "\n\r"):
        return "a line break or NUL inside an accepted line"
    word = line.split()[0].lower()
    if word.startswith("."):
        if word in safety._INCLUDE_DIRECTIVES:
            path = Path(line.split()[1])
            if not path.is_absolute() or not any(path == d or d in path.parents for d in allowed) \
                    or path.resolve() != path:
                return f"include outside the allowed folder: {line}"
            return None
        return None if word in safety._ALLOWED_DIRECTIVES else f"directive not on the allow-list: {line}"
    if word[0] == "a" or word[0] not in safety._NODE_COUNT:
        return f"not an allowed element: {line}"
    if line.lstrip().startswith("*") or line.lstrip().startswith("+"):
        return f"comment or continuation kept: {line}"
    return None


def fuzz_netlist(n: int, seed: int = 0, cli_every: int = 50) -> Outcome:
    """check_netlist raises only UnsafeNetlistError; every line it accepts obeys its own rules; its
    output checked again is accepted unchanged; `cktflow verify` refuses with exit 2 naming file and line."""
    from spice_sim import check_netlist
    from spice_sim.errors import UnsafeNetlistError

    from cktflow.resources import pdk_dir
    out = Outcome("fuzz: netlist safety checker (check_netlist, CLI verify)")
    pdk = pdk_dir().resolve()
    allowed = (pdk,)
    with _workdir() as wd:
        link = wd / "escape.lib"
        link.symlink_to("/etc/passwd")
        spec = wd / "spec.yaml"
        spec.write_text("targets: {gain_db: {min: 1dB}}\n")

        def check(text):
            out.cases += 1
            checked = _call(out, text, lambda: check_netlist(text, source="fuzz.cir", allowed_dirs=allowed),
                            (UnsafeNetlistError,), r"fuzz\.cir:\d+: ")
            if checked is _CRASHED:
                return
            if checked is not None:
                for line in checked.lines:
                    problem = _netlist_line_ok(line, allowed)
                    if problem:
                        out.fail(f"accepted against its rules: {problem!r} from {text[:300]!r}")
                        return
                try:
                    again = check_netlist(f"* {checked.title}\n" + checked.body, source="again.cir",
                                          allowed_dirs=allowed)
                    if again.lines != checked.lines:
                        out.fail(f"re-check changed the lines: {checked.lines!r} -> {again.lines!r}")
                except BaseException as exc:   # noqa: BLE001
                    out.fail(f"re-check refused its own output: {_unexpected(exc)} for {text[:300]!r}")
            if checked is None and cli_every and out.cases % cli_every == 0:
                path = wd / f"n{out.cases}.cir"
                _cli_case(out, path, text, ["verify", "--spec", str(spec), str(path)], want_line=True)
        _run(netlist_texts(pdk, link), check, n, seed)
    out.scale = f"{n:,} cases, 1 in {cli_every} also through the CLI"
    return out.done()


# ------------------------------------------------------------------------------------------------
# Spectre

@st.composite
def spectre_texts(draw):
    from cktflow.circuit import OcbGenerator
    from cktflow.export import spectre
    if draw(st.integers(0, 3)) == 0:     # our own export, then edited
        import io
        buf = io.StringIO()
        spectre.write(OcbGenerator(seed=draw(st.integers(0, 2**16))).take(1)[0], buf)
        return _mutate(draw, buf.getvalue())
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=300))
    name = st.one_of(st.sampled_from(["in", "out", "0", "n1", "a!b", "x<1>", ".control", "a;b", "*#x", "shell"]),
                     st.text(alphabet="abc019_.!<>[]-;$*", min_size=1, max_size=6))
    num = st.one_of(st.sampled_from(["1k", "1e999", "nan", "inf", "1M", "-5", "0", "1e300", "1e-300", "p1", "x"]),
                    st.floats(allow_nan=True).map(repr))
    stmts = []
    for _ in range(draw(st.integers(0, 10))):
        kind = draw(st.integers(0, 9))
        if kind <= 3:
            master = draw(st.sampled_from(["resistor", "capacitor", "inductor", "vccs", "vcvs", "vsource", "isource",
                                           "sub1", "bsource", "nmos", "filesource"]))
            key = draw(st.sampled_from(["r", "c", "l", "gm", "gain", "dc", "mag", "phase", "type", "file", "x"]))
            nets = " ".join(draw(st.lists(name, max_size=5)))
            stmts.append(f"{draw(name)} ({nets}) {master} {key}={draw(num)}")
        elif kind == 4:
            stmts.append(f"{draw(name)} {draw(st.sampled_from(['ac', 'dc', 'tran', 'info', 'options']))} "
                         f"start={draw(num)} stop={draw(num)} dec={draw(num)}")
        elif kind == 5:
            stmts.append(draw(st.sampled_from(["subckt sub1 a b", "subckt", "ends", "ends sub1", "global 0",
                                               "simulator lang=spice", "simulator lang=spectre", "save out",
                                               'include "/etc/passwd"', "ahdl_include \"x.va\"", "parameters x=1k",
                                               "parameters y=x", "parameters z=1e999", "statistics {", "model m bsim4",
                                               "//c", "* c", "\\", "x (a b) \\"])))
        else:
            stmts.append(draw(st.text(max_size=30)))
    sep = draw(st.sampled_from(["\n", "\r\n", "\\\n", "\u2028"]))
    text = sep.join(stmts)
    return _mutate(draw, text) if draw(st.integers(0, 3)) == 0 else text


def fuzz_spectre(n: int, seed: int = 0, cli_every: int = 50) -> Outcome:
    """spectre.read raises only SpectreImportError and to_spice_deck only that or UnsafeNetlistError;
    what it accepts passes check_netlist again; `cktflow verify x.scs` refuses with exit 2."""
    from spice_sim import check_netlist
    from spice_sim.errors import UnsafeNetlistError

    from cktflow.export.spectre import SpectreImportError, read, to_spice_deck
    from cktflow.resources import pdk_dir
    out = Outcome("fuzz: Spectre importer (export.spectre.read, CLI verify .scs)")
    with _workdir() as wd:
        spec = wd / "spec.yaml"
        spec.write_text("targets: {gain_db: {min: 1dB}}\n")

        def check(text):
            out.cases += 1
            imported = _call(out, text, lambda: read(text, source="fuzz.scs"), (SpectreImportError,),
                             r"fuzz\.scs(:\d+)?: ")
            if imported is _CRASHED:
                return
            deck = imported and _call(out, text, lambda: to_spice_deck(imported, source="fuzz.scs"),
                                      (SpectreImportError, UnsafeNetlistError), r"fuzz\.scs(:\d+)?: ")
            if deck is _CRASHED:
                return
            if deck is not None:
                try:
                    check_netlist(deck, source="deck.cir", allowed_dirs=(pdk_dir(),))
                except BaseException as exc:   # noqa: BLE001
                    out.fail(f"the translated deck fails the safety check: {_unexpected(exc)} for {text[:300]!r}")
                sweep = imported.sweep
                if sweep is not None and (sweep.points_per_decade > 1000 or not 0 < sweep.fstart < sweep.fstop
                                          or math.log10(sweep.fstop / sweep.fstart) > 20):
                    out.fail(f"an unbounded AC sweep was accepted: {sweep} from {text[:300]!r}")
            elif cli_every and out.cases % cli_every == 0:
                path = wd / f"s{out.cases}.scs"
                _cli_case(out, path, text, ["verify", "--spec", str(spec), str(path)])
        _run(spectre_texts(), check, n, seed)
    out.scale = f"{n:,} cases, 1 in {cli_every} also through the CLI"
    return out.done()


# ------------------------------------------------------------------------------------------------
# dataset import (JSONL, Parquet)

def _sample_rows(k: int = 6) -> list[dict]:
    """k exported rows of a real dataset file (circuits from the generator, labels made up: the
    importer checks structure and hashes, not physics)."""
    from spice_sim import Performance

    from cktflow.circuit import OcbGenerator
    from cktflow.dataset import Dataset, Record, export_dataset
    with _workdir() as wd:
        with Dataset.open(wd / "src.sqlite") as ds:
            circuits = OcbGenerator(seed=7).take(k)
            ds.append([Record(c, Performance(gain_db=40.0 + i, ugf_hz=1e7 * (i + 1), stable=True), split="train",
                              provenance={"source": "fuzz", "index": i}, simulator="ngspice-39", testbench="tb")
                       if i % 3 else Record(c, failure="nonconvergence", message="m", split="test",
                                            provenance={"source": "fuzz"}, simulator="ngspice-39", testbench="tb")
                       for i, c in enumerate(circuits)])
            export_dataset(ds, wd / "x.jsonl")
        return [json.loads(ln) for ln in (wd / "x.jsonl").read_text().splitlines()]


@st.composite
def dataset_files(draw, rows: list[dict]):
    """(format, bytes of the file)."""
    import copy
    fmt = draw(st.sampled_from(["jsonl", "jsonl", "parquet"]))
    chosen = copy.deepcopy(draw(st.lists(st.sampled_from(rows), max_size=5)))
    for _ in range(draw(st.integers(0, 3))):
        if not chosen:
            break
        row = draw(st.sampled_from(chosen))
        key = draw(st.sampled_from(sorted(row) + ["extra"]))
        op = draw(st.sampled_from(["junk", "delete", "perf", "circuit"]))
        if op == "delete":
            row.pop(key, None)
        elif op == "perf":
            row["performance"] = draw(st.one_of(st.none(), _junk(), st.dictionaries(
                st.sampled_from(["gain_db", "ugf_hz", "stable", "x"]), _junk(), max_size=3)))
        elif op == "circuit" and isinstance(row.get("circuit"), dict):
            row["circuit"] = draw(circuit_dicts())
        else:
            row[key] = draw(_junk())
    if fmt == "jsonl":
        text = "\n".join(json.dumps(r) for r in chosen)
        if draw(st.integers(0, 4)) == 0:
            text = _mutate(draw, text)
        return fmt, text.encode("utf-8", "surrogatepass")
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    from spice_sim import METRICS
    flat = []
    for r in chosen:
        f = {k: (json.dumps(v) if k in ("circuit", "provenance") and not isinstance(v, str) else v)
             for k, v in r.items() if k != "performance"}
        perf = r.get("performance")
        for m in METRICS:
            f[m] = perf.get(m) if isinstance(perf, dict) else None
        flat.append(f)
    buf = io.BytesIO()
    try:
        pq.write_table(pa.Table.from_pylist(flat), buf)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        pq.write_table(pa.Table.from_pylist([{"hash": "x"}]), buf)
    data = buf.getvalue()
    if draw(st.integers(0, 3)) == 0:     # a damaged file: truncated or with flipped bytes
        i = draw(st.integers(0, max(0, len(data) - 1)))
        data = data[:i] if draw(st.booleans()) else data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
    return fmt, data


def fuzz_dataset_import(n: int, seed: int = 0, cli_every: int = 25) -> Outcome:
    """import_dataset raises only ValueError (naming the file) and adds nothing when it refuses;
    what it accepts, exported and imported into an empty file, gives the same rows; `cktflow
    dataset import` exits 0 or 2."""
    import sqlite3

    from cktflow.dataset import Dataset, export_dataset, import_dataset
    out = Outcome("fuzz: dataset importer (JSONL, Parquet; CLI dataset import)")
    rows = _sample_rows()
    with _workdir() as wd:
        def check(arg):
            fmt, data = arg
            out.cases += 1
            path = wd / f"in{out.cases}.{fmt}"
            path.write_bytes(data)
            db = wd / "db.sqlite"
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(str(db) + suffix)
            with Dataset.open(db) as ds:
                try:
                    added = import_dataset(ds, path)
                except ValueError as exc:
                    added = None
                    if str(path) not in str(exc):
                        out.fail(f"refusal does not name the file: {exc}")
                    if len(ds):
                        out.fail(f"a refused import left {len(ds)} rows behind")
                except BaseException as exc:   # noqa: BLE001
                    out.fail(f"{_unexpected(exc)} for {data[:300]!r}")
                    return
                if added is not None:
                    try:
                        export_dataset(ds, wd / "re.jsonl")
                        with Dataset.open(wd / "re.sqlite") as ds2:
                            import_dataset(ds2, wd / "re.jsonl")
                            a = sorted(r.to_row() for r in ds.records(only_ok=False))
                            b = sorted(r.to_row() for r in ds2.records(only_ok=False))
                            if a != b:
                                out.fail(f"export/import changed rows of {data[:200]!r}")
                    except BaseException as exc:   # noqa: BLE001
                        out.fail(f"re-import refused its own export: {_unexpected(exc)} for {data[:300]!r}")
                    finally:
                        for p in wd.glob("re.*"):
                            p.unlink()
                        for p in wd.glob("re.sqlite*"):
                            p.unlink()
            if cli_every and out.cases % cli_every == 0:
                cdb = wd / "cli.sqlite"
                res = _cli(["dataset", "import", "--db", str(cdb), str(path)])
                if res.exit_code != 0:
                    problem = _cli_refusal_ok(res, path, want_line=False)
                    if problem:
                        out.fail(f"CLI: {problem}: {res.output[-300:]!r}")
                if cdb.exists():
                    con = sqlite3.connect(cdb)
                    if con.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                        out.fail("integrity_check failed after a CLI import")
                    con.close()
            path.unlink()
        _run(dataset_files(rows), check, n, seed)
    out.scale = f"{n:,} cases, 1 in {cli_every} also through the CLI"
    return out.done()


ALL = {"spec": fuzz_spec, "circuit": fuzz_circuit_json, "netlist": fuzz_netlist, "spectre": fuzz_spectre,
       "dataset": fuzz_dataset_import}
