"""Are the model's first proposals usable? A quick development check, away from the benchmark's specs.

For window specs (bench/autodesign.py's shape: gain +-5 dB, UGF x/ 10^0.15, PM +-10 deg) around
circuits drawn afresh by the Ckt-Bench-101 procedure with generator seeds 3001... (neither the
dataset's, the benchmark's --fresh ones nor cktflow.model.usable's draws; test-split topologies
excluded), each model proposes its 20 first candidates and, as the closed loop does when none
meets the spec, its 20 wider ones; ngspice measures them all. Printed per model: the share of specs
met by a first candidate (what "within 20 simulations" of the benchmark counts, before sizing),
by the first 40, and the share of candidates that are usable in feedback (the spec's implicit
targets alone) or meet the whole spec. No sizing, but not fast either: each spec costs two
proposals (more than 15 s per spec and model on the busy 2-core machine).

    python bench/usable_proposals.py --specs 60 CHECKPOINT [CHECKPOINT ...]   (default: the shipped model)

--reachable RUN (a `cktflow train --usable` output folder) instead counts, for the benchmark's own
100 specs (bench/autodesign.py's draw), how many are met as measured, implicit targets included, by some
training-side circuit: the training split and the circuits `cktflow train --usable` measured. A
spec that none of them meets needs sizing to get there, if anything usable gets there at all.
Nothing is trained on this; it only says where the benchmark's hard specs lie.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from autodesign import spec_from  # noqa: E402

from cktflow.circuit import OcbGenerator
from cktflow.simulate import simulate
from cktflow.spec import Spec

#: generator seeds of the development specs (see the docstring)
DEV_SEEDS = range(3001, 3011)


def dev_specs(n: int, seed: int = 0) -> list[Spec]:
    """n window specs around fresh circuits' measurements (test-split topologies excluded)."""
    from cktflow.model.data import load_examples
    from cktflow.model.usable import held_out_topologies

    exclude = held_out_topologies(load_examples())
    circuits = [c for s in DEV_SEEDS for c in OcbGenerator(seed=s).take(max(20, 4 * n // len(DEV_SEEDS)))
                if c.topology_hash() not in exclude]
    perfs = [r.performance for r in simulate(circuits, progress=False) if r.ok]
    perfs = [p for p in perfs if p.ugf_hz is not None and p.pm_deg is not None and p.gain_db is not None
             and 0 < p.pm_deg <= 180]
    pick = np.random.default_rng(seed).permutation(len(perfs))[:n]
    return [spec_from(perfs[i], f"dev-{i}") for i in pick]


def score(checkpoint: str | None, specs: list[Spec], n: int = 20) -> dict:
    from cktflow.model.sample import load_model, load_refinement, propose_wider, propose_with_model

    model, refine = load_model(checkpoint), load_refinement(checkpoint)
    met20 = met40 = usable = meets = total = 0
    t0 = time.perf_counter()
    for k, spec in enumerate(specs):
        first = propose_with_model(model, spec, n, seed=k, refine=refine)
        wider = propose_wider(model, spec, n, seed=k, refine=refine)
        perfs = [r.performance if r.ok else None for r in simulate(first + wider, progress=False)]
        implicit_only = Spec(spec.implicit_bounds, name=spec.name, implicit=False)
        ok = [p is not None and spec.passes(p) for p in perfs]
        met20 += any(ok[:len(first)])
        met40 += any(ok)
        usable += sum(p is not None and implicit_only.passes(p) for p in perfs[:len(first)])
        meets += sum(ok[:len(first)])
        total += len(first)
    return {"checkpoint": checkpoint or "shipped", "specs": len(specs), "met_by_first_20": met20 / len(specs),
            "met_by_first_40": met40 / len(specs), "first_usable_share": usable / max(1, total),
            "first_meet_share": meets / max(1, total), "seconds": round(time.perf_counter() - t0, 1)}


def reachable(run: Path, n_specs: int = 100, seed: int = 1) -> dict:
    """How many of bench/autodesign.py's specs some training-side circuit (the training split, the
    circuits measured in the `cktflow train --usable` folder `run`) meets as measured."""
    from autodesign import target_specs

    from cktflow.model.data import _read_jsonl, load_examples
    from cktflow.model.usable import held_out_topologies, is_usable

    examples = load_examples()
    exclude = held_out_topologies(examples)
    perfs = [e.performance for e in examples if e.split == "train"]
    for measured in sorted(run.glob("measured*.jsonl")):
        perfs += [e.performance for e in _read_jsonl(measured) if e.circuit.topology_hash() not in exclude]
    pairs = target_specs(examples, n_specs, seed)
    met = [sum(s.passes(p) for p in perfs) for s, _ in pairs]
    high_pm = [k for k, (_, p) in enumerate(pairs) if p.pm_deg > 95]
    return {"circuits": len(perfs), "usable": sum(is_usable(p) for p in perfs), "specs": len(pairs),
            "met_as_measured": sum(m > 0 for m in met), "specs_pm_above_95": len(high_pm),
            "of_those_met_as_measured": sum(met[k] > 0 for k in high_pm)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="*", help="model.pt files (their predictor.pt beside them)")
    ap.add_argument("--specs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--reachable", type=Path, metavar="RUN",
                    help="count the benchmark's specs that training-side circuits meet as measured (docstring)")
    args = ap.parse_args()
    if args.reachable:
        print(json.dumps(reachable(args.reachable), indent=1))
        return
    import torch
    torch.set_num_threads(1)
    specs = dev_specs(args.specs, args.seed)
    rows = [score(c, specs) for c in (args.checkpoints or [None])]
    for r in rows:
        print(f"{r['checkpoint']}: {r['specs']} specs, met by the first 20 {100 * r['met_by_first_20']:.0f} %, "
              f"by 40 {100 * r['met_by_first_40']:.0f} %; first candidates usable {100 * r['first_usable_share']:.0f} %,"
              f" meeting the spec {100 * r['first_meet_share']:.0f} % ({r['seconds']:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
