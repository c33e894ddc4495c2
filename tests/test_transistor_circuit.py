"""Transistor circuits (cktflow.transistor.circuit): templates, users' subcircuit files, sizes
checked against the PDK, JSON, canonical hash, and the exports (plain-ngspice subcircuit and
testbench, xschem, KiCad). Real ngspice and the real sky130 models, as tests/test_sky130.py.

Without the installed PDK these tests skip with a loud reason, or fail when CKTFLOW_REQUIRE_PDK=1."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess

import pytest
from pdk_required import require_pdk

TECH = require_pdk("sky130")

from spice_sim.engine import get_engine  # noqa: E402

from cktflow.export.transistor import (export_transistor, transistor_elements, write_kicad,  # noqa: E402
                                       write_xschem)
from cktflow.transistor import (CircuitFileError, Conditions, OpampBench, PortError, SizingError,  # noqa: E402
                                TransistorCircuit, TransistorFormatError, from_template, read_subckt, templates)

NEW = ("foldedcascode", "nestedmiller3")
USER = """* my amplifier: ports in another order, sizes as .param
.param wn=4 ln=0.5
.param wp = 4   lp=1
.param ib=20u
.subckt myamp vdd out inn inp vss
xm1 n1 inp tail vss sky130_fd_pr__nfet_01v8 W={wn} L={ln} nf=1
xm2 out inn tail vss sky130_fd_pr__nfet_01v8 W={wn} L={ln} nf=1
xm3 n1 n1 vdd vdd sky130_fd_pr__pfet_01v8 W={wp} L={lp} nf=1
xm4 out n1 vdd vdd sky130_fd_pr__pfet_01v8 W={wp} L={lp} nf=1
xm5 tail nb vss vss sky130_fd_pr__nfet_01v8 W=8 L=1 nf=1
xm6 nb nb vss vss sky130_fd_pr__nfet_01v8 W=8 L=1 nf=1
ib vdd nb {ib}
.ends myamp
"""


@pytest.fixture(scope="module")
def engine():
    return get_engine()


@pytest.fixture(scope="module")
def ota():
    return from_template("ota5t")


@pytest.fixture(scope="module")
def ota_measured(ota, engine):
    dut, name, params = ota.dut()
    with OpampBench(dut, name, params, pdk=ota.pdk, engine=engine) as bench:
        yield bench.measure(Conditions(**ota.conditions), noise=False, swing=False)


# -- templates and their parameters --------------------------------------------------------------

def test_templates_are_listed_with_bounds_from_the_pdk():
    assert set(templates()) == {"ota5t", "miller2", "foldedcascode", "nestedmiller3"}
    c = from_template("miller2")
    nfet, mim, res = TECH.device("nfet_01v8"), TECH.device("cap_mim"), TECH.device("res_high_po")
    w_in, w_cc, l_rz = c.param("w_in"), c.param("w_cc"), c.param("l_rz")
    assert (w_in.low, w_in.high, w_in.grid, w_in.unit) == (*nfet.limits["w"], nfet.grid, "um")
    assert (w_cc.low, w_cc.high, w_cc.grid) == (*mim.limits["w"], mim.grid)
    assert (l_rz.low, l_rz.high, l_rz.grid) == (*res.limits["l"], res.grid)
    ib = c.param("ibias")
    assert (ib.value, ib.unit, ib.low, ib.high) == (20e-6, "A", 1e-6, 200e-6)      # the template's *@ line
    assert c.conditions == {"vcm": 1.1, "cl": 1e-12}
    # a parameter sizing the tail, the sink and the diode (all nfet L) has the nfet's L limits
    assert from_template("miller2").param("l_tail").sizes == ("nfet_01v8.l",)
    fc = from_template("foldedcascode")
    assert {p.name for p in fc.params} >= {"w_in", "l_in", "w_pc", "l_pc", "w_nc", "w_bpc", "l_bnc", "ibias"}
    nm = from_template("nestedmiller3")
    assert nm.param("w_c1").sizes == ("cap_mim.w",) and nm.param("w_c2").sizes == ("cap_mim.w",)
    with pytest.raises(KeyError, match="no template 'nope'.*ota5t"):
        from_template("nope")


def test_sizes_are_checked_against_bounds_and_grid(ota):
    bigger = ota.with_sizes(w_in=8, ibias=30e-6)
    assert bigger.sizes()["w_in"] == 8 and ota.sizes()["w_in"] == 4          # immutable
    for sizes, match in [({"w_in": 0.3}, r"w_in=0.3 um is outside \[0.42, 100\]"),
                         ({"l_in": 0.501}, r"l_in=0.501 is not on the 0.005 grid \(snapped: 0.5\)"),
                         ({"ibias": 1e-3}, r"ibias=0.001 A is outside \[1e-06, 0.0002\]"),
                         ({"w_nope": 1}, r"unknown sizing parameter 'w_nope' \(known: ibias, l_in"),
                         ({"w_in": "wide"}, r"w_in must be a number")]:
        with pytest.raises(SizingError, match=match):
            ota.with_sizes(**sizes)
    assert issubclass(SizingError, ValueError)
    snapped = ota.snapped(w_in=0.1, l_in=0.5012, ibias=1.0)
    assert snapped.sizes()["w_in"] == 0.42 and snapped.sizes()["l_in"] == 0.5 and snapped.sizes()["ibias"] == 200e-6
    assert from_template("ota5t", w_in=6).sizes()["w_in"] == 6
    with pytest.raises(SizingError):
        from_template("ota5t", w_in=200)


def test_canonical_hash_ignores_order_whitespace_comments_and_name():
    base = read_subckt(USER, source="user.cir")
    shuffled = USER.replace(".param wn=4 ln=0.5\n", "").replace(".param ib=20u", ".param ib=20u ln=0.5  wn=4")
    spaced = re.sub(r" ", "   ", USER).replace("xm3", "* a comment\nxm3").replace("myamp", "otheramp")
    assert read_subckt(shuffled, source="u2.cir").canonical_hash() == base.canonical_hash()
    assert read_subckt(spaced, source="u3.cir").canonical_hash() == base.canonical_hash()
    assert base.with_sizes(wn=4.005).canonical_hash() != base.canonical_hash()
    assert base.with_sizes(ib=21e-6).canonical_hash() != base.canonical_hash()
    rewired = USER.replace("xm4 out n1 vdd", "xm4 out n1 vss")
    assert read_subckt(rewired, source="u4.cir").canonical_hash() != base.canonical_hash()


# -- a user's subcircuit file --------------------------------------------------------------------

def test_a_users_file_is_read_ports_mapped_by_name(tmp_path):
    helper = ".subckt buf a y vdd vss\nxm1 y a vss vss sky130_fd_pr__nfet_01v8 W=1 L=0.15\n.ends buf\n"
    assert read_subckt(USER + helper, source="user.cir").name == "myamp"      # the one with all five ports
    c = read_subckt(USER, source="user.cir")
    assert c.name == "myamp" and c.body.splitlines()[0] == ".subckt myamp inp inn out vdd vss"
    assert c.sizes() == {"ib": 20e-6, "ln": 0.5, "lp": 1.0, "wn": 4.0, "wp": 4.0}
    assert c.param("ib").unit == "A" and c.param("ib").low == pytest.approx(2e-6)   # a decade either side
    assert c.param("wp").sizes == ("pfet_01v8.w",)
    assert c.dut()[1] == "myamp" and c.dut()[2] == c.sizes()


@pytest.mark.parametrize("edit, error, match", [
    (("vdd out inn inp vss", "vdd out inn inp"), PortError, r"user.cir:5: subcircuit 'myamp' lacks port\(s\) vss"),
    (("vdd out inn inp vss", "vdd out inn inp vss bias"), PortError, r"user.cir:5: .*has port\(s\) bias"),
    (("ib vdd nb {ib}", ".control"), CircuitFileError, r"user.cir:12: '.control' runs simulator commands"),
    (("ib vdd nb {ib}", ".include /etc/passwd"), CircuitFileError, r"user.cir:12: .* outside the PDK folder"),
    (("sky130_fd_pr__nfet_01v8 W=8 L=1 nf=1\nxm6", "sky130_fd_pr__nfet_99v9 W=8 L=1 nf=1\nxm6"),
     CircuitFileError, r"user.cir:10: 'xm5': unknown model or subcircuit"),
    ((".param wn=4", ".param wn=0.2"), CircuitFileError, r"user.cir:6: xm1 \(nfet_01v8\): w=0.2 is outside"),
    (("W={wp} L={lp} nf=1\nxm4", "W={wq} L={lp} nf=1\nxm4"), CircuitFileError,
     r"user.cir:8: '\{wq\}' names 'wq', which no .param defines"),
    ((".param ib=20u", ".param ib=20u\nvstray a 0 1"), CircuitFileError, r"user.cir:5: 'vstray' outside a subcircuit"),
    ((".param ib=20u", ".param ib={2*wn}"), CircuitFileError, r"user.cir:4: .param ib=\{2\*wn\}: a sizing parameter"),
])
def test_a_bad_file_is_refused_naming_file_and_line(edit, error, match):
    old, new = edit
    assert old in USER
    with pytest.raises(error, match=match) as info:
        read_subckt(USER.replace(old, new), source="user.cir")
    assert isinstance(info.value, ValueError)


def test_a_header_declares_bounds_inside_the_pdks(tmp_path):
    text = "*@ param ib unit=A min=5u max=50u\n" + USER
    assert read_subckt(text, source="h.cir").param("ib").high == 50e-6
    with pytest.raises(CircuitFileError, match=r"h.cir:1: bounds of wn \[0.1, 10\] leave the PDK's \[0.42, 100\]"):
        read_subckt("*@ param wn unit=um min=0.1 max=10\n" + USER, source="h.cir")
    with pytest.raises(CircuitFileError, match=r"h.cir:1: '\*@ param ib' takes unit=, min= and max="):
        read_subckt("*@ param ib unit=A min=5u\n" + USER, source="h.cir")
    with pytest.raises(CircuitFileError, match=r"h.cir:1: unknown condition\(s\) load"):
        read_subckt("*@ conditions vcm=1 load=5p\n" + USER, source="h.cir")
    assert read_subckt("*@ conditions vcm=1 cl=2p\n" + USER, source="h.cir").conditions == {"vcm": 1.0, "cl": 2e-12}


# -- JSON ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ota5t", "miller2", "foldedcascode", "nestedmiller3"])
def test_json_round_trip(name):
    c = from_template(name).snapped(w_in=5.0)
    back = TransistorCircuit.from_json(c.to_json())
    assert back.to_dict() == c.to_dict() and back.canonical_hash() == c.canonical_hash()
    assert back.dut() == c.dut()


@pytest.mark.parametrize("change, match", [
    (lambda d: d.pop("body"), r"c.json: missing field 'body'"),
    (lambda d: d.update(version=99), r"c.json: field 'version' is 99"),
    (lambda d: d.update(format="other"), r"c.json: field 'format' must be"),
    (lambda d: d["params"][2].update(value="big"), r"c.json: params\[2\]: field 'value' must be a number"),
    (lambda d: d["params"][2].update(value=1e6), r"c.json: params\[2\]: l_load=1e\+06 um is outside"),
    (lambda d: d["params"][2].update(min=0.01), r"c.json: params\[2\]: bounds of l_load \[0.01, 20\] leave"),
    (lambda d: d["params"].pop(0), r"c.json: body:\d+: '\{ibias\}' names 'ibias', which no .param defines"),
    (lambda d: d["params"].append({**d["params"][0], "name": "w_extra"}), r"c.json: field 'params' does not match"),
    (lambda d: d["body"].insert(1, ".control"), r"c.json: body:10: '.control' runs simulator commands"),
    (lambda d: d.update(extra=1), r"c.json: unknown field\(s\) extra"),
    (lambda d: d["conditions"].update(load=1), r"c.json: field 'conditions': unknown key\(s\) load"),
])
def test_json_errors_name_the_field(ota, change, match):
    d = json.loads(ota.to_json())
    change(d)
    with pytest.raises(ValueError, match=match):
        TransistorCircuit.from_json(json.dumps(d), source="c.json")
    with pytest.raises(TransistorFormatError, match=r"c.json: not valid JSON"):
        TransistorCircuit.from_json("{", source="c.json")


# -- schematics --------------------------------------------------------------------------------------

def _xschem_devices(text: str) -> dict[str, tuple[str, dict]]:
    out = {}
    for m in re.finditer(r"^C \{(sky130_fd_pr/\S+|devices/isource.sym)\} (-?\d+) (-?\d+) \d \d \{([^}]*)\}$",
                         text, re.M):
        attrs = dict(kv.split("=", 1) for kv in m.group(4).split())
        out[attrs["name"]] = (m.group(1), attrs)
    return out


@pytest.mark.parametrize("name", ["miller2", "foldedcascode", "nestedmiller3"])
def test_xschem_has_every_device_with_its_sky130_symbol_and_sizes(name):
    c = from_template(name)
    buf = io.StringIO()
    write_xschem(c, buf)
    text = buf.getvalue()
    assert text.startswith("v {xschem version=")
    devices = _xschem_devices(text)
    sizes = c.sizes()
    expected = {ln.split()[0]: ln for ln in c.body.splitlines() if ln[0].lower() in "xi"}
    for inst, line in expected.items():
        sym, attrs = devices[inst[1:].upper() if inst[0] == "x" else inst]
        if inst[0] == "i":
            assert sym == "devices/isource.sym" and float(attrs["value"]) == pytest.approx(sizes["ibias"])
            continue
        model = next(t for t in line.split() if t.startswith("sky130_fd_pr__"))
        assert sym == f"sky130_fd_pr/{model.split('__')[1]}.sym" and attrs["model"] == model.split("__")[1]
        assert attrs["spiceprefix"] == "X"
        for tok in line.split():
            k, _, v = tok.partition("=")
            if k in ("W", "L"):
                want = sizes[v.strip("{}")] if v.startswith("{") else float(v)
                assert float(attrs[k]) == pytest.approx(want), (inst, k)
            if k == "m":
                assert attrs.get("mult", attrs.get("MF")) == v
    assert len(devices) == len(expected)
    ports = re.findall(r"^C \{devices/(i?o?pin)\.sym\} .*lab=(\w+)\}$", text, re.M)
    assert sorted(ports) == sorted([("ipin", "inp"), ("ipin", "inn"), ("opin", "out"), ("iopin", "vdd"), ("iopin", "vss")])


@pytest.mark.parametrize("name", ["ota5t", "nestedmiller3"])
def test_kicad_parses_and_every_pin_reaches_its_net(name, tmp_path):
    from kiutils.schematic import Schematic
    c = from_template(name)
    path = tmp_path / "c.kicad_sch"
    with open(path, "w") as fh:
        write_kicad(c, fh)
    sch = Schematic.from_file(str(path))
    libs = {lib.libId: lib for lib in sch.libSymbols}
    labels = {(round(lb.position.X, 3), round(lb.position.Y, 3)): lb.text for lb in sch.labels}
    ends = {}
    for w in sch.graphicalItems:
        a, b = [(round(p.X, 3), round(p.Y, 3)) for p in w.points]
        ends[a], ends[b] = b, a
    elements = {e.name.upper(): e for e in transistor_elements(c)}
    seen = set()
    for inst in sch.schematicSymbols:
        props = {p.key: p.value for p in inst.properties}
        e = elements[props["Reference"].upper()]
        seen.add(e.name.upper())
        if e.shape:
            assert props["Spice_Primitive"] == "X" and props["Spice_Model"].startswith("sky130_fd_pr__")
            assert props["W"] == dict(e.attrs)["W"] and props["L"] == dict(e.attrs)["L"]
        for unit in libs[inst.libId].units:
            for pin in unit.pins:
                at = (round(inst.position.X + pin.position.X, 3), round(inst.position.Y - pin.position.Y, 3))
                net = e.nets[int(pin.number) - 1]
                assert labels[ends[at]] == net, (e.name, pin.number)
    assert seen == set(elements)
    assert sorted(h.text for h in sch.hierarchicalLabels) == sorted(["inp", "inn", "out", "vdd", "vss"])


# -- simulation: the DUT in OpampBench, the exported deck in plain ngspice ----------------------------

def _plain_ngspice(c: TransistorCircuit, folder) -> dict[str, float]:
    paths = export_transistor(c, folder, ("spice", "testbench"))
    assert paths["spiceinit"].read_text().startswith("set ngbehavior=hsa")
    assert paths["spice"].read_text().strip() in paths["testbench"].read_text()
    proc = subprocess.run([shutil.which("ngspice") or "ngspice", "-b", paths["testbench"].name], cwd=folder,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    found = dict(re.findall(r"^(gain_db|ugf_hz|pm_deg) = (\S+)$", proc.stdout, re.M))
    assert set(found) == {"gain_db", "ugf_hz", "pm_deg"}, proc.stdout[-2000:]
    return {k: float(v) for k, v in found.items()}


def test_dut_measures_in_opamp_bench(ota_measured):
    p = ota_measured.performance
    assert p.gain_db == pytest.approx(39.5, abs=0.3) and ota_measured.all_saturated


@pytest.mark.skipif(shutil.which("ngspice") is None, reason="the ngspice program is not installed")
def test_exported_testbench_gives_the_benchs_gain_in_plain_ngspice(ota, ota_measured, tmp_path):
    plain = _plain_ngspice(ota, tmp_path)
    p = ota_measured.performance
    assert plain["gain_db"] == pytest.approx(p.gain_db, abs=0.1)
    assert plain["ugf_hz"] == pytest.approx(p.ugf_hz, rel=0.01)
    assert plain["pm_deg"] == pytest.approx(p.pm_deg, abs=1.0)


# Figures measured at each template's own conditions (tt, 27 C, 1.8 V): gain, UGF, PM, power,
# min margin (docs/transistor-level.md, "Transistor circuits").
FIGURES = {"ota5t": (39.5, 4.62e6, 90.0, 70.6e-6), "miller2": (65.3, 14.1e6, 86.5, 220.3e-6),
           "foldedcascode": (72.8, 5.75e6, 88.4, 141.8e-6), "nestedmiller3": (114.2, 17.2e6, 59.3, 315.3e-6)}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FIGURES))
def test_template_figures_and_plain_ngspice_export(name, engine, tmp_path):
    c = from_template(name)
    dut, dut_name, params = c.dut()
    with OpampBench(dut, dut_name, params, pdk=c.pdk, engine=engine) as bench:
        m = bench.measure(Conditions(**c.conditions), noise=False, swing=False)
    p = m.performance
    gain, ugf, pm, power = FIGURES[name]
    assert m.all_saturated and m.min_margin_v > 0.05, (m.worst_device, m.min_margin_v)
    assert p.pm_deg > 45 and p.stable is True
    assert p.gain_db == pytest.approx(gain, abs=1.0)
    assert p.ugf_hz == pytest.approx(ugf, rel=0.05)
    assert p.pm_deg == pytest.approx(pm, abs=3.0)
    if power is not None:
        assert m.power_w == pytest.approx(power, rel=0.02)
    plain = _plain_ngspice(c, tmp_path)
    assert plain["gain_db"] == pytest.approx(p.gain_db, abs=0.1)
