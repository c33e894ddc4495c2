"""CktGen model quality on the regenerated Bench-101 test split, beside the paper's CktGen row.

Runs `cktflow evaluate`'s protocol on a model (default: the shipped one) and, for the ablations,
the guided class protocol on each extra checkpoint given with --ablation NAME=PATH (train them with
`cktflow train --recipe no-align` / `--recipe no-kl`). Prints the tables and the issue's targets.

    python bench/model_quality.py --rounds 10 --sim-rounds 3 --continuous-specs 50 \
        --ablation "default@16=runs/default16/model.pt" --ablation "no-kl@16=runs/no-kl/model.pt"

Use small --rounds / --sim-rounds / --continuous-specs for a quick run; the paper uses 120 rounds.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

import torch

from cktflow.model.evaluate import (PAPER_CKTGEN_ROW, ProtocolSettings, class_protocol, format_report,
                                    model_generator, run_evaluation)
from cktflow.model.sample import Guidance

TARGETS = {"top1": 45.0, "spec_acc_evaluator": 60.0, "validity": 99.0, "spec_acc_ngspice": 47.57,
           "novel_and_meets": 25.0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="model weights (default: the shipped model)")
    ap.add_argument("--evaluator", help="evaluator weights (default: evaluator.pt beside the checkpoint)")
    ap.add_argument("--db", help="dataset store (default: the cktflow dataset or the regenerated set)")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--sim-rounds", type=int, default=5)
    ap.add_argument("--candidates", type=int, default=8)
    ap.add_argument("--continuous-specs", type=int, default=50)
    ap.add_argument("--ablation", action="append", default=[], metavar="NAME=PATH",
                    help="an extra checkpoint scored with the guided class protocol (repeatable)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json-out", help="also write the full report as JSON here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    settings = ProtocolSettings(rounds=args.rounds, sim_rounds=min(args.sim_rounds, args.rounds), seed=args.seed)
    t0 = time.perf_counter()
    report = run_evaluation(args.checkpoint, db=args.db, settings=settings, evaluator_path=args.evaluator,
                            candidates=args.candidates, continuous_specs=args.continuous_specs, progress=False)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    if args.ablation:
        from pathlib import Path

        from cktflow.model.data import build_tensor_data, load_examples
        from cktflow.model.evaluator import load_evaluator
        from cktflow.model.sample import default_checkpoint, load_model, load_refinement
        from cktflow.simulate import simulate

        examples = load_examples(args.db)
        train = build_tensor_data([e for e in examples if e.split == "train"])
        test = build_tensor_data([e for e in examples if e.split == "test"])
        ckpt = Path(args.checkpoint) if args.checkpoint else default_checkpoint()
        evaluator = load_evaluator(args.evaluator or ckpt.parent / "evaluator.pt")
        report["ablations"] = {}
        for item in args.ablation:
            name, _, path = item.partition("=")
            if not path:
                ap.error(f"--ablation takes NAME=PATH, got {item!r}")
            gen = model_generator(load_model(path), Guidance(), args.seed, candidates=args.candidates,
                                  refine=load_refinement(path))
            report["ablations"][name] = class_protocol(gen, evaluator, train, test, settings,
                                                       simulate_fn=lambda cs: simulate(cs, progress=False))
    print(format_report(report))
    if report.get("ablations"):
        from cktflow.report import table
        rows = [[n, f"{r['top1']:.2f}", f"{r['spec_acc_evaluator']:.2f}", f"{r['fid']:.3f}", f"{r['validity']:.2f}",
                 f"{r.get('spec_acc_ngspice', float('nan')):.2f}"] for n, r in report["ablations"].items()]
        print(f"\nAblations (guided, best of {args.candidates}, same protocol):")
        print(table(["model", "Top-1", "Spec-Acc (eval)", "FID", "Validity", "Spec-Acc (ngspice)"], rows))
    # the targets against every generated row (guided and not, best of K and single), side by side
    rows = {n: r for n, r in report["class_protocol"].items() if n.startswith("cktflow")}
    print(f"\nTargets (paper Top-1 {PAPER_CKTGEN_ROW['top1']}):")
    print(f"  {'':20s} {'target':>8s}  " + "  ".join(f"{n.removeprefix('cktflow '):>22s}" for n in rows))
    for key, goal in TARGETS.items():
        cells = []
        for r in rows.values():
            v = r.get(key)
            cells.append(f"{'-' if v is None else f'{v:.2f}':>14s} {'met' if v is not None and v >= goal else 'MISSED':>7s}")
        print(f"  {key:20s} {'>= ' + str(goal):>8s}  " + "  ".join(cells))
    print(f"\n({report['seconds']} s for the main evaluation)")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
