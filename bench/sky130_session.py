"""sky130 in one long-lived ngspice: what loading the library costs, what a simulation costs once
it is loaded, and the 5T OTA's measured figures against its closed forms.

    .venv/bin/python bench/sky130_session.py [--resizes 50]

Prints one line per figure (numbers recorded in docs/transistor-level.md).
"""

from __future__ import annotations

import argparse
import math
import time

from spice_sim.analyses import Session
from spice_sim.engine import get_engine

from cktflow.resources import templates_dir
from cktflow.technology import load_technology
from cktflow.transistor import Conditions, OpampBench, model_library

NFET = "sky130_fd_pr__nfet_01v8"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resizes", type=int, default=50)
    args = ap.parse_args()
    tech = load_technology("sky130")
    eng = get_engine()
    cl = 5e-12

    # a common-source stage: the library load, then op + AC per new size
    deck = f"vdd vdd 0 1.8\nvin g 0 dc 0.75 ac 1\nrd vdd d 50k\nxm1 d g 0 0 {NFET} W={{wn}} L=1 nf=1"
    t0 = time.perf_counter()
    with Session(eng, deck, library=model_library(tech, "tt"), params={"wn": 2.0}, device_models={NFET}) as s:
        print(f"cs: library + deck load {time.perf_counter() - t0:.2f} s")
        d = s.op().devices["xm1"]
        gain = abs(s.ac(1, 1e3, 5, ("d",))["d"][0])
        pred = d.gm / (d.gds + 1 / 50e3)
        print(f"cs: gain {gain:.4f} vs gm*(ro||RD) {pred:.4f} ({100 * (gain / pred - 1):+.2f} %)")
        t0 = time.perf_counter()
        for k in range(args.resizes):
            s.set_params(wn=2.0 + 0.01 * (k + 1))
            s.op()
            s.ac(1, 1e9, 10, ("d",))
        dt = (time.perf_counter() - t0) / args.resizes
        print(f"cs: per new size (alterparam + reset + op + AC 1 Hz-1 GHz): {1e3 * dt:.1f} ms")

    ota = (templates_dir() / "sky130" / "ota5t.cir").read_text()
    t0 = time.perf_counter()
    with OpampBench(ota, "ota5t", {}, engine=eng) as b:
        print(f"ota: library + 5 testbench blocks load {time.perf_counter() - t0:.2f} s")
        t0 = time.perf_counter()
        m = b.measure(Conditions(vcm=1.1, cl=cl))
        print(f"ota: one full measurement (op, AC, noise, step) {time.perf_counter() - t0:.2f} s")
        d = m.op.devices
        gm1, gds2, gds4, itail = d["xdut.xm1"].gm, d["xdut.xm2"].gds, d["xdut.xm4"].gds, d["xdut.xm5"].id
        a, pa = 10 ** (m.performance.gain_db / 20), gm1 / (gds2 + gds4)
        print(f"ota: gain {a:.2f} vs gm1/(gds2+gds4) {pa:.2f} ({100 * (a / pa - 1):+.2f} %)")
        u, pu = m.performance.ugf_hz, gm1 / (2 * math.pi * cl)
        print(f"ota: UGF {u / 1e6:.3f} MHz vs gm1/(2 pi CL) {pu / 1e6:.3f} MHz ({100 * (u / pu - 1):+.2f} %)")
        for edge, sr in (("rise", m.slew_rise_v_per_s), ("fall", m.slew_fall_v_per_s)):
            print(f"ota: slew {edge} {sr / 1e6:.3f} V/us vs Itail/CL {itail / cl / 1e6:.3f} V/us "
                  f"({100 * (sr / (itail / cl) - 1):+.2f} %)")
        print(f"ota: power {1e6 * m.power_w:.2f} uW = 1.8 V x {1e6 * m.supply_a:.3f} uA; "
              f"PM {m.performance.pm_deg:.1f} deg, "
              f"CMRR {m.cmrr_db:.1f} dB, PSRR {m.psrr_db:.1f} dB, settling {1e9 * m.settling_s:.0f} ns, "
              f"noise {1e9 * m.noise_v_per_rthz:.1f} nV/rtHz @ 1 kHz, offset {1e3 * m.offset_v:.2f} mV, "
              f"worst vds-vdsat {m.min_margin_v:.3f} V ({m.worst_device})")
        t0 = time.perf_counter()
        for k in range(args.resizes // 5):
            b.measure(Conditions(vcm=1.1, cl=cl), noise=False, step=False, w_in=4 + 0.05 * (k % 2 + 1))
        dt = (time.perf_counter() - t0) / (args.resizes // 5)
        print(f"ota: per new size, op + AC + swing DC sweep (5 blocks): {1e3 * dt:.0f} ms")


if __name__ == "__main__":
    main()
