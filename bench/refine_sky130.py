"""Does the sky130 predictor's refinement give better first sizes? (issue 20)

For designer specs of bench/designer_specs_sky130.py (their stored rows: the spec each run drew),
every template is measured at the spec's typical condition twice: at its own sizes, and at the
sizes `refine_sizes` moves them to with the given predictor. Prints, per spec and overall, the
spec's shortfall at typical (0: met at typical) of both, and how often each meets the spec at
typical. The screen of `generate` is exactly this first simulation.

    .venv/bin/python bench/refine_sky130.py --runs runs/designer_specs_sky130_model_0.json \
        --predictor cktflow/model/weights/sky130_predictor.pt --specs 12
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from designer_specs_sky130 import spec_from_row  # noqa: E402

from cktflow.flow.transistor import conditions_of  # noqa: E402
from cktflow.model.sizing_predictor import load_sizing_predictor, refine_sizes  # noqa: E402
from cktflow.technology import load_technology  # noqa: E402
from cktflow.transistor import from_template, templates  # noqa: E402
from cktflow.transistor.jobs import KeyedLocalSimulator, OpampJob  # noqa: E402


def measure(sim, circuit, spec, tech):
    conds = conditions_of(spec, tech, circuit)
    cond = next((c for c in conds if c.corner == tech.default_corner and c.temp_c == 27.0), conds[0])
    dut, name, sizes = circuit.dut()
    res = sim.run(OpampJob(dut, name, tuple(sorted(sizes.items())), conditions=cond, pdk=tech.name))
    perf = res.metrics.performance if getattr(res, "metrics", None) is not None else None
    return spec.shortfall(perf)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", required=True, help="a designer-spec run JSON (its rows hold the specs)")
    ap.add_argument("--predictor", required=True)
    ap.add_argument("--specs", type=int, default=12)
    args = ap.parse_args(argv)
    rows = [r for r in json.loads(Path(args.runs).read_text())["rows"] if r.get("spec")][:args.specs]
    model = load_sizing_predictor(args.predictor)
    tech = load_technology("sky130")
    own_s, ref_s = [], []
    with KeyedLocalSimulator(timeout_s=180) as sim:
        for row in rows:
            spec = spec_from_row(row["k"], row)
            cells = []
            for name in templates("sky130"):
                c = from_template(name)
                r = refine_sizes(model, c, spec, seed=row["k"])
                a = measure(sim, c, spec, tech)
                b = measure(sim, r.circuit, spec, tech) if r.circuit is not c else a
                own_s.append(a)
                ref_s.append(b)
                cells.append(f"{name} {a:.2f}->{b:.2f}")
            print(f"spec #{row['k']:<3} ({row['template']:<13}) " + "  ".join(cells), flush=True)
    n = len(own_s)
    print(f"\n{n} template x spec pairs at typical: met at own sizes {sum(s == 0 for s in own_s)}, "
          f"after refinement {sum(s == 0 for s in ref_s)}; median shortfall {statistics.median(own_s):.3g} -> "
          f"{statistics.median(ref_s):.3g}; refinement better in {sum(b < a for a, b in zip(own_s, ref_s))}, "
          f"worse in {sum(b > a for a, b in zip(own_s, ref_s))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
