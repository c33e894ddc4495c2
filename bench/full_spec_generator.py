"""The full-spec generator at sky130: fine-tuned from the behavioural model against trained from
scratch, and against the behavioural model itself (issue 20, item 2).

Two parts, both on data no model trained on:
1. Held-out figures of each training run (the store's test split: realised topologies no run saw),
   from the checkpoints' histories: the total loss, node-type and edge accuracy of the behavioural
   circuit decoded (teacher-forced) from the full spec's latent alone, and the full-spec head's mean
   absolute error, before the first step and after the last.
2. ngspice: for each designer spec (bench/designer_specs_sky130.py's rows, held out), each model
   proposes `--proposals` topologies, which are realised on sky130 at the spec's load and common
   mode and measured at the spec's typical condition, as generate screens a candidate (one
   simulation at its own sizes). Reported per model: the share of proposals realised, the share
   measured with every device saturated, the share usable (stable, pm_min >= 45, peaking <= 6 dB,
   saturated), the median over specs of the best proposal's shortfall at typical, the specs whose
   best proposal is within shortfall 1 and 3, and the distinct topologies proposed.

    .venv/bin/python bench/full_spec_generator.py --finetuned runs/sky130_generator/finetuned/sky130_generator.pt \
        --scratch runs/sky130_generator/scratch/sky130_generator.pt \
        --specs-from runs/designer_specs_sky130.json --specs 16 --json runs/full_spec_generator.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from designer_specs_sky130 import spec_from_row  # noqa: E402

from cktflow.flow.transistor import conditions_of  # noqa: E402
from cktflow.flow.transistor_design import model_candidates  # noqa: E402
from cktflow.model.checkpoint import default_checkpoint, load_checkpoint  # noqa: E402
from cktflow.sizing.transistor import TRANSISTOR_CONFIG, size_transistor  # noqa: E402
from cktflow.technology import load_technology  # noqa: E402
from cktflow.transistor.jobs import KeyedLocalSimulator  # noqa: E402


def usable(p) -> bool:
    if p is None:
        return False
    pm, pk = p.get("pm_min_deg"), p.get("peaking_db")
    return (p.get("stable") is True and pm is not None and pm >= 45 and pk is not None and pk <= 6
            and p.get("all_saturated") is True)


def held_out(path: str) -> dict:
    """Test-split scores before the first step and at the epoch the run kept (its validation's best)."""
    hist = load_checkpoint(Path(path).with_name("checkpoint.pt"))["history"]
    kept = load_checkpoint(path)["epoch"]
    first, last = hist[0], next(h for h in hist if h["epoch"] == kept)
    keys = ("test_loss", "test_type_acc", "test_edge_acc", "test_head_mae")
    return {"epochs": last["epoch"], "before": {k: first.get(k) for k in keys}, "after": {k: last.get(k) for k in keys}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--finetuned", required=True, help="the fine-tuned generator's weights (model file)")
    ap.add_argument("--scratch", required=True, help="the generator trained from scratch (model file)")
    ap.add_argument("--specs-from", required=True, help="a designer-spec run (bench/designer_specs_sky130.py)")
    ap.add_argument("--specs", type=int, default=16)
    ap.add_argument("--proposals", type=int, default=4)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    tech = load_technology("sky130")
    models = {"behavioural": str(default_checkpoint()), "finetuned": args.finetuned, "scratch": args.scratch}
    rows = [r for r in json.loads(Path(args.specs_from).read_text())["rows"] if not r.get("skipped")][:args.specs]
    out = {"held_out": {k: held_out(v) for k, v in models.items() if k != "behavioural"}, "specs": len(rows),
           "proposals": args.proposals, "models": {}}
    t0 = time.perf_counter()
    with KeyedLocalSimulator(timeout_s=180, max_processes=4) as sim:
        for name, ckpt in models.items():
            per = []
            for row in rows:
                spec = spec_from_row(row["k"], row)
                cands = model_candidates(spec, tech, n=args.proposals, checkpoint=ckpt, seed=row["k"])
                rec = {"k": row["k"], "proposed": len(cands), "realised": 0, "saturated": 0, "usable": 0,
                       "shortfalls": [], "topologies": []}
                for c in cands:
                    if not hasattr(c, "circuit"):
                        continue
                    rec["realised"] += 1
                    rec["topologies"].append(c.circuit.topology_hash())
                    r = size_transistor(c.circuit, spec, conditions_of(spec, tech, c.circuit), sim,
                                        config=replace(TRANSISTOR_CONFIG, budget=1), seed=row["k"])
                    perf = r.runs[0].performance if r.runs else None
                    rec["saturated"] += bool(perf is not None and perf.get("all_saturated"))
                    rec["usable"] += usable(perf)
                    rec["shortfalls"].append(r.best.shortfall)
                per.append(rec)
                print(f"{name:<11} spec {row['k']:<3} realised {rec['realised']}/{rec['proposed']} "
                      f"best shortfall {min(rec['shortfalls'], default=math.inf):.3g}", flush=True)
            out["models"][name] = per
    out["seconds"] = time.perf_counter() - t0
    print()
    print("| model | proposals realised | all saturated | usable | median best shortfall | best <= 1 | best <= 3 | "
          "distinct topologies |")
    print("|---|---|---|---|---|---|---|---|")
    for name, per in out["models"].items():
        prop = sum(r["proposed"] for r in per)
        real = sum(r["realised"] for r in per)
        best = [min(r["shortfalls"], default=math.inf) for r in per]
        print(f"| {name} | {real}/{prop} | {sum(r['saturated'] for r in per)}/{real} | {sum(r['usable'] for r in per)}/{real} | "
              f"{statistics.median(best):.2f} | {sum(b <= 1 for b in best)}/{len(per)} | {sum(b <= 3 for b in best)}/{len(per)} | "
              f"{len({t for r in per for t in r['topologies']})} |")
    print()
    print("| run | epochs | held-out loss | type acc. | edge acc. | head MAE (before -> after) |")
    print("|---|---|---|---|---|---|")
    for name, h in out["held_out"].items():
        b, a = h["before"], h["after"]
        print(f"| {name} | {h['epochs']} | {b['test_loss']:.2f} -> {a['test_loss']:.2f} | "
              f"{b['test_type_acc']:.3f} -> {a['test_type_acc']:.3f} | {b['test_edge_acc']:.3f} -> {a['test_edge_acc']:.3f} | "
              f"{b['test_head_mae']:.3f} -> {a['test_head_mae']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
