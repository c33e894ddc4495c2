"""Regenerate Ckt-Bench-101-style circuits, label them with ngspice, compare with the published labels.

Prints the 25/50/75 % quantiles of gain (dB), UGF and the OCB label PM beside those of
shared/data/ocb/CktBench101/perform101.csv (de-normalised with the published constants of
ocb-generator.md section 5, placeholder rows excluded), and simulations per second.

    python bench/ocb_labels.py [--n 2000] [--seed 1] [--csv PATH]
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np

from cktflow.circuit import OcbGenerator, testbench
from cktflow.circuit.ocb_labels import PLACEHOLDER, denormalise
from spice_sim import LocalSimulator, SimJob

DEFAULT_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ocb" / "CktBench101" / "perform101.csv"


def published(path: Path) -> dict[str, np.ndarray]:
    gain, pm, ugf = [], [], []
    with open(path) as f:
        for row in csv.DictReader(f):
            g, p, b = float(row["gain"]), float(row["pm"]), float(row["bw"])
            if all(abs(x - y) < 1e-9 for x, y in zip((g, p, b), PLACEHOLDER)):
                continue
            gain_db, pm_deg, ugf_hz = denormalise(g, p, b)
            gain.append(gain_db)
            pm.append(pm_deg)
            ugf.append(ugf_hz)
    return {"gain_db": np.array(gain), "ugf_hz": np.array(ugf), "ocb_pm_deg": np.array(pm)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    args = ap.parse_args()

    circuits = OcbGenerator(seed=args.seed).take(args.n)
    decks = [testbench(c) for c in circuits]
    with LocalSimulator() as sim:
        sim.run(SimJob(decks[0]))           # start the ngspice process outside the timing
        t0 = time.perf_counter()
        results = [sim.run(SimJob(d)) for d in decks]
        elapsed = time.perf_counter() - t0
    ok = [r.performance for r in results if r.ok]
    ours = {k: np.array([getattr(p, k) for p in ok if getattr(p, k) is not None], dtype=float)
            for k in ("gain_db", "ugf_hz", "ocb_pm_deg", "pm_deg")}
    ref = published(args.csv)
    print(f"regenerated: {args.n} circuits (seed {args.seed}), {len(ok)} simulated, "
          f"{args.n - len(ok)} failed, {len(ok) - len(ours['ugf_hz'])} without a unity-gain crossing")
    print(f"published:   {len(ref['gain_db'])} rows of {args.csv.name} (placeholder rows excluded)")
    print(f"simulation:  {args.n / elapsed:.0f} simulations/s (one in-process ngspice, sequential, "
          f"1,101-point AC sweep)\n")
    fmt = {"gain_db": lambda v: f"{v:8.1f} dB", "ugf_hz": lambda v: f"{v / 1e9:7.3f} GHz",
           "ocb_pm_deg": lambda v: f"{v:7.1f} deg"}
    print(f"{'metric':<11} {'source':<12} {'25 %':>12} {'50 %':>12} {'75 %':>12}  median inside published IQR?")
    for key in ("gain_db", "ugf_hz", "ocb_pm_deg"):
        q_ours = np.percentile(ours[key], [25, 50, 75])
        q_ref = np.percentile(ref[key], [25, 50, 75])
        inside = q_ref[0] <= q_ours[1] <= q_ref[2]
        print(f"{key:<11} {'regenerated':<12} " + " ".join(f"{fmt[key](v):>12}" for v in q_ours)
              + f"  {'yes' if inside else 'NO'}")
        print(f"{'':<11} {'published':<12} " + " ".join(f"{fmt[key](v):>12}" for v in q_ref))
    q = np.percentile(ours["pm_deg"], [25, 50, 75])
    print(f"\n(design phase margin pm_deg of the regenerated set, for reference: "
          f"{q[0]:.1f} / {q[1]:.1f} / {q[2]:.1f} deg)")


if __name__ == "__main__":
    main()
