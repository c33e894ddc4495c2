"""One regression test per bug the fuzzers of issue 22 found (tests/reliability/fuzz.py): each was
a traceback (exit 3) or a silent acceptance where the reader should refuse with its own error."""

import io
import json

import pytest

from cktflow.circuit import Circuit, CircuitFormatError, OcbGenerator
from cktflow.spec import SpecError, parse_spec


# ---- spec parser ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, line", [
    ("targets: {gain_db: {min: 1}}\nname: a\x15b\n", 2),          # ReaderError: had no line number
    ("[" * 5000 + "]" * 5000, 1),                                   # RecursionError in PyYAML
    ('name: "\\UFFFFFFFF"\ntargets: {gain_db: {min: 1}}\n', 1),    # OverflowError in PyYAML
    ('name: "\\U0011FFFF"\ntargets: {gain_db: {min: 1}}\n', 1),    # ValueError (chr) in PyYAML
    ("? [a, b]\n: 1\ntargets: {gain_db: {min: 1}}\n", 1),          # TypeError: unhashable key
    ("targets:\n  ? {x: 1}\n  : {min: 1}\n", 2),                     # TypeError: unhashable metric
    ("targets: {gain_db: {min: 60}}\ntargets: {ugf_hz: {min: 1}}\n", 2),   # was: the last one silently won
])
def test_spec_refusals_name_the_line(text, line):
    with pytest.raises(SpecError, match=rf"^s\.yaml:{line}: "):
        parse_spec(text, source="s.yaml")


# ---- circuit JSON ----------------------------------------------------------------------------------
def _circuit_dict():
    return OcbGenerator(seed=3).take(1)[0].to_dict()


@pytest.mark.parametrize("text", ["[" * 100000 + "]" * 100000, '{"nodes": ' + "1" * 5000 + "}"])
def test_circuit_json_too_deep_or_too_long(text):
    with pytest.raises(CircuitFormatError, match="not valid JSON"):
        Circuit.from_json(text)


@pytest.mark.parametrize("edge", [{"0": 1}, [1e400, 1], "01", [0.5, 1], [True, 1], [0, 1, 2], 7])
def test_circuit_edges_must_be_pairs_of_integers(edge):
    d = _circuit_dict()
    d["edges"].append(edge)
    with pytest.raises(CircuitFormatError, match="edge"):
        Circuit.from_json(json.dumps(d).replace("Infinity", "1e400"))


@pytest.mark.parametrize("field, value", [("values", 5), ("values", "ab"), ("values", {"R": 10 ** 400}),
                                          ("pos", True)])
def test_circuit_node_fields(field, value):
    d = _circuit_dict()
    d["nodes"][2][field] = value
    with pytest.raises(CircuitFormatError):
        Circuit.from_dict(d)


# ---- Spectre importer ------------------------------------------------------------------------------
def test_spectre_bare_subckt():
    from cktflow.export.spectre import SpectreImportError, read
    with pytest.raises(SpectreImportError, match=r"x\.scs:2: 'subckt' without a name"):
        read("// t\nsubckt\n", source="x.scs")


def test_spectre_lone_parenthesis():     # found by the 10,000-case bench run: IndexError
    from cktflow.export.spectre import SpectreImportError, read
    with pytest.raises(SpectreImportError, match=r"x\.scs:2: expected 'name \(terminals\)"):
        read("// t\n(\n", source="x.scs")


@pytest.mark.parametrize("sweep", ["start=1 stop=1e300 dec=10", "start=1 stop=1G dec=1e9", "start=0 stop=1G dec=10",
                                   "start=1G stop=1 dec=10"])
def test_spectre_sweep_is_bounded(sweep):
    from cktflow.export.spectre import SpectreImportError, read
    text = f"// t\nr1 (in out) resistor r=1k\nac1 ac {sweep}\n"
    with pytest.raises(SpectreImportError, match=r"x\.scs:3: "):
        read(text, source="x.scs")


# ---- dataset importer ------------------------------------------------------------------------------
@pytest.fixture
def exported(tmp_path):
    from spice_sim import Performance

    from cktflow.dataset import Dataset, Record, export_dataset
    with Dataset.open(tmp_path / "src.sqlite") as ds:
        ds.append([Record(c, Performance(gain_db=40.0), split="train", provenance={"source": "t"}, simulator="s",
                          testbench="t") for c in OcbGenerator(seed=5).take(3)])
        export_dataset(ds, tmp_path / "x.jsonl")
        export_dataset(ds, tmp_path / "x.parquet")
    return tmp_path


@pytest.mark.parametrize("field, value", [("testbench", {"a": 1}), ("simulator", 5), ("topology_hash", None),
                                          ("message", ["x"]), ("provenance", [1, 2]),
                                          ("topology_hash", "0" * 32)])
def test_dataset_import_refuses_wrong_types(exported, field, value):
    from cktflow.dataset import Dataset, import_dataset
    rows = [json.loads(ln) for ln in (exported / "x.jsonl").read_text().splitlines()]
    rows[1][field] = value
    bad = exported / "bad.jsonl"
    bad.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with Dataset.open(exported / "db.sqlite") as ds:
        with pytest.raises(ValueError, match=str(bad)):
            import_dataset(ds, bad)
        assert len(ds) == 0          # nothing half-imported


def test_dataset_import_damaged_files(exported):
    from cktflow.dataset import Dataset, import_dataset
    data = (exported / "x.parquet").read_bytes()
    cut = exported / "cut.parquet"
    cut.write_bytes(data[:len(data) // 2] + data[-8:])          # footer kept, body cut: OSError in pyarrow
    latin = exported / "latin.jsonl"
    latin.write_bytes((exported / "x.jsonl").read_bytes() + b'{"x": "\xcd"}\n')   # UnicodeDecodeError
    with Dataset.open(exported / "db.sqlite") as ds:
        for path in (cut, latin):
            with pytest.raises(ValueError, match=str(path)):
                import_dataset(ds, path)
        assert len(ds) == 0


def test_dataset_cli_import_refusal_is_exit_2(exported):
    from click.testing import CliRunner

    from cktflow.cli.main import main
    bad = exported / "bad.jsonl"
    bad.write_text(json.dumps({"hash": 1}) + "\n")
    res = CliRunner().invoke(main, ["dataset", "import", "--db", str(exported / "db.sqlite"), str(bad)])
    assert res.exit_code == 2 and "Traceback" not in res.output and f"{bad}:1:" in res.output


# ---- found by the hostile corpus (tests/data/hostile) --------------------------------------------
@pytest.mark.parametrize("name", ['"x\\n.control\\nshell rm -rf ~\\n.endc"', "../../tmp/x", "/etc", '""', "..",
                                  "[a, b]", "x" * 101])
def test_spec_name_is_one_plain_line(name):
    # the name is generate's default folder and the title line of exported netlists: a newline there
    # put a working `.control` block into every exported .cir; a '/' wrote outside generated/
    with pytest.raises(SpecError, match=r"^s\.yaml:1: 'name' must be one line"):
        parse_spec(f"name: {name}\ntargets: {{gain_db: {{min: 1}}}}\n", source="s.yaml")


def test_spec_yaml_bomb_is_never_expanded():
    lol = "[" + ",".join(["lol"] * 9) + "]"
    lines = ["targets: {gain_db: {min: 1}}", "description:", f"  - &a {lol}"]
    lines += [f"  - &{c} [" + ",".join([f"*{p}"] * 9) + "]" for p, c in zip("abcdefgh", "bcdefghi")]
    for field in ("name", "objective"):      # both were formatted into a string (9^9 items)
        with pytest.raises(SpecError):
            parse_spec("\n".join(lines + [f"{field}: *i"]), source="s.yaml")


def test_canonical_hash_of_many_tied_nodes_is_bounded():
    import time

    from cktflow.circuit import Node
    base = Circuit.from_dict(_circuit_dict())
    c = Circuit(base.nodes + tuple([Node(6, 4, {"gm": 1e-3})] * 20), base.edges)
    t0 = time.perf_counter()
    assert c.canonical_hash() == c.reordered(reversed(range(len(c.nodes)))).canonical_hash()
    assert time.perf_counter() - t0 < 20    # was: itertools.product over 20! orders, never returned


def test_circuit_file_node_limit():
    d = _circuit_dict()
    d["nodes"] += [{"type": 6, "pos": 4, "values": {"gm": 1e-3}}] * 64
    with pytest.raises(CircuitFormatError, match="at most 64 nodes"):
        Circuit.from_dict(d)


def test_netlist_size_is_bounded():
    from spice_sim import check_netlist, safety
    from spice_sim.errors import UnsafeNetlistError
    with pytest.raises(UnsafeNetlistError, match=r"n\.cir:200001: netlist of 200,002 lines"):
        check_netlist("* t\n" + "R1 a b 1\n" * (safety.MAX_LINES + 1), source="n.cir")
    with pytest.raises(UnsafeNetlistError, match=r"n\.cir:1: netlist of"):
        check_netlist("* " + "x" * safety.MAX_CHARS, source="n.cir")


def test_spectre_title_stays_on_one_line():
    from cktflow.export import spectre
    buf = io.StringIO()
    spectre.write(OcbGenerator(seed=3).take(1)[0], buf, title="x\n.control\nshell touch y\n.endc")
    assert not any(ln.strip().startswith((".control", "shell")) for ln in buf.getvalue().splitlines())


def test_a_title_with_newlines_stays_one_line_in_exported_decks(tmp_path):
    """`cktflow export --title` with a newline could put a `.control` block into the deck."""
    from click.testing import CliRunner

    from cli import main
    out = tmp_path / "x.cir"
    r = CliRunner().invoke(main, ["export", "--format", "spice", "-o", str(out), "--title",
                                  "t\n.control\nshell touch pwned\n.endc", "examples/circuits/two_stage_miller.json"])
    assert r.exit_code == 0, r.output
    lines = out.read_text().splitlines()
    assert not any(ln.strip().lower().startswith((".control", "shell")) for ln in lines)
