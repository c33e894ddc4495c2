"""xschem export: the real xschem netlists the exported .sch headless and ngspice measures that
netlist; gain, UGF and PM must equal the original circuit's within 1e-6 relative."""

import io
from concurrent.futures import ThreadPoolExecutor

import pytest

from cktflow.circuit import wrap_testbench
from cktflow.export import xschem
from cktflow.export.elements import circuit_elements
from export_helpers import assert_same, reference, simulate, varied_circuits
from spice_sim import check_netlist

CIRCUITS = varied_circuits(50, first_seed=1000)


def test_the_sample_is_varied():
    assert len({c.topology_hash() for c in CIRCUITS}) >= 40
    assert {len(c.nodes) for c in CIRCUITS} >= {5, 6, 7, 8}
    assert any(c.nodes[i].kind.feedback for c in CIRCUITS for i in range(len(c.nodes)))


@pytest.fixture(scope="module")
def netlists(tmp_path_factory):
    """Every circuit exported and netlisted by xschem (two xschem processes at a time)."""
    folder = tmp_path_factory.mktemp("xschem")
    paths = []
    for k, c in enumerate(CIRCUITS):
        path = folder / f"c{k}.sch"
        with open(path, "w") as fh:
            xschem.write(c, fh, title=f"c{k}")
        paths.append(path)
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(xschem.xschem_netlist, paths))


def test_uses_standard_symbols():
    buf = io.StringIO()
    xschem.write(CIRCUITS[0], buf)
    text = buf.getvalue()
    assert text.startswith("v {xschem version=")
    for sym in ("devices/vccs.sym", "devices/res.sym", "devices/capa.sym", "devices/vsource.sym",
                "devices/gnd.sym", "devices/lab_pin.sym"):
        assert sym in text


@pytest.mark.parametrize("k", range(len(CIRCUITS)))
def test_round_trip_through_xschem_and_ngspice(netlists, k):
    c = CIRCUITS[k]
    checked = check_netlist(netlists[k], source=f"c{k}.spice")
    # xschem found every device of the circuit, by name, with nothing added
    names = {line.split()[0].lower() for line in checked.lines if not line.startswith(".")}
    assert names == {e.name.lower() for e in circuit_elements(c)}
    deck = wrap_testbench(checked.body, add_source=not checked.has_source_at("in"))
    assert_same(simulate(deck), reference(c), what=f"circuit {k}: {c}")


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(xschem.XschemError):
        xschem.xschem_netlist(tmp_path / "nothing.sch")
