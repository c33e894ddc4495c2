"""Automated design, side by side: how often does each way of finding circuits meet a spec in ngspice?

Target specs come from one measured circuit of the test split each (never trained on), loosened
by a fixed margin: feasible by construction for the user's targets, and with the implicit
"usable in feedback" ones too only when the source circuit is usable (--usable-sources keeps just
those). Two kinds (--kind):
  window (default)  gain within +-5 dB, UGF within x/ 10^0.15, PM within +-10 deg of the measured
                    circuit: a band, like the paper's spec classes, so a circuit must hit the target
                    rather than exceed it (--window-scale S multiplies the half-widths: 0.5
                    and 0.25 give stricter specs);
  min               gain >= -3 dB, UGF >= / 10^0.1, PM >= -5 deg of the measured values (one-sided).
Only circuits with a UGF and a design phase margin in (0, 180] deg give specs (a larger "margin"
means phase lead at the UGF, which no designer asks for). --uncovered keeps only the specs that no
training circuit meets as measured: there a lookup has nothing to copy and must size too. --fresh N
takes the specs from N circuits drawn afresh (another generator seed; topologies no training circuit
has) instead of the test split. Every method gets the same budget of ngspice runs per spec, its
candidates' first simulations included, and the same sizing (cktflow.sizing via
cktflow.flow.design_loop):

  (a) model      cktflow's model proposes candidates for the spec (guided sampling)
  (b) random     random OCB topologies (Ckt-Bench-101 procedure, random values)
  (c) miller     sizing alone of one fixed two-stage Miller op-amp (examples/circuits/two_stage_miller.json)
  (d) retrieval  the training-split circuits whose measured performance is nearest the spec

When none of a method's first candidates meets the spec as simulated, it proposes once more (the
model samples wider, random draws again, retrieval takes the next nearest; --no-second turns this
off) within the same budget. With --memory, (a) then takes the nearest training circuits as a third
batch (as `cktflow generate --memory` takes the nearest stored ones).
A spec counts as met only when the verification run (a fresh ngspice simulation of the final
circuit) passes every bound, the implicit "usable in feedback" targets included (stable in unity
feedback, pm_min_deg >= the spec's PM floor, peaking_db <= 6 dB; cktflow.spec). --user-targets-only
runs the specs with `implicit: false` (the rule before those targets existed) and reports how many
of its verified circuits would pass the implicit targets. Printed too: how many specs come from a
circuit that is itself usable (a spec from an unusable circuit may be infeasible once the implicit
targets hold). Prints success rate, median simulations and median wall time per
success (model sampling included for (a); the verification re-run is not counted in simulations).

    python bench/autodesign.py [--n-specs 100] [--budget 200] [--methods a,b,c,d] [--usable-sources] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from cktflow.circuit import Circuit, OcbGenerator
from cktflow.dataset import NearestCircuits
from cktflow.flow import design_loop
from cktflow.sizing import SerialPool, SizingConfig
from cktflow.spec import Bound, Spec

ROOT = Path(__file__).resolve().parents[1]
MILLER = ROOT / "examples" / "circuits" / "two_stage_miller.json"
LOOSEN = {"gain_db": 3.0, "ugf_decades": 0.1, "pm_deg": 5.0}          # kind "min"
FRESH_SEED = 1000                                                      # --fresh: generator seed offset
WINDOW = {"gain_db": 5.0, "ugf_decades": 0.15, "pm_deg": 10.0}         # kind "window": half-widths
METHODS = {"a": "model", "b": "random", "c": "miller", "d": "retrieval"}


def spec_from(perf, name: str, kind: str = "window", scale: float = 1.0) -> Spec:
    """Bounds around a measured circuit's gain, UGF and PM (so the spec is feasible by construction);
    `scale` multiplies the window's half-widths (0.5: half as wide, a stricter spec)."""
    g, u, p = perf.gain_db, perf.ugf_hz, perf.pm_deg
    if kind == "min":
        return Spec((Bound("gain_db", min=g - LOOSEN["gain_db"]), Bound("ugf_hz", min=u / 10 ** LOOSEN["ugf_decades"]),
                     Bound("pm_deg", min=p - LOOSEN["pm_deg"])), name=name)
    w = {k: v * scale for k, v in WINDOW.items()}
    return Spec((Bound("gain_db", min=g - w["gain_db"], max=g + w["gain_db"]),
                 Bound("ugf_hz", min=u / 10 ** w["ugf_decades"], max=u * 10 ** w["ugf_decades"]),
                 Bound("pm_deg", min=p - w["pm_deg"], max=p + w["pm_deg"])), name=name)


def target_specs(examples, n: int, seed: int, kind: str = "window", uncovered: bool = False,
                 skip: int = 0, fresh: list | None = None, scale: float = 1.0,
                 usable_sources: bool = False) -> list[tuple[Spec, object]]:
    """n specs from random test circuits (or from `fresh` performances, see fresh_performances); with
    `uncovered`, only specs that no training circuit meets as measured (so a lookup's first
    simulations cannot meet them either); with `usable_sources`, only specs whose source circuit
    meets them, implicit targets included (feasible by construction under the "usable in feedback"
    rule, as every spec was under the rule before it). `skip` passes over the first specs of the draw: `--skip
    100` gives a development set disjoint from the default 100. Each spec comes with the measured
    performance it was made from."""
    prefix, perfs = ("fresh", fresh) if fresh is not None else ("test", [e.performance for e in examples
                                                                          if e.split == "test"])
    perfs = [p for p in perfs if p.ugf_hz is not None and p.pm_deg is not None and 0 < p.pm_deg <= 180]
    pick = np.random.default_rng(seed).permutation(len(perfs))
    specs = ((spec_from(perfs[i], f"{prefix}-{i}", kind, scale), perfs[i]) for i in pick)
    if usable_sources:
        specs = ((s, p) for s, p in specs if s.passes(p))
    if uncovered:
        train = [e.performance for e in examples if e.split == "train" and e.performance.ugf_hz
                 and e.performance.pm_deg is not None and e.performance.gain_db is not None]
        specs = ((s, p) for s, p in specs if not _met_by_any(s, train))
    specs = (s for k, s in enumerate(specs) if k >= skip)
    return [s for _, s in zip(range(n), specs)]


def fresh_performances(examples, n: int, seed: int, pool) -> list:
    """ngspice-measured performances of n circuits drawn afresh by the Ckt-Bench-101 procedure
    (generator seed FRESH_SEED + seed; the dataset is seed 1), keeping only topologies that no
    training circuit has: specs from circuits that were never in the data at all."""
    from cktflow.simulate import simulate
    train = {e.circuit.topology_hash() for e in examples if e.split == "train"}
    circuits = [c for c in OcbGenerator(seed=FRESH_SEED + seed).take(n) if c.topology_hash() not in train]
    return [r.performance for r in simulate(circuits, pool, progress=False) if r.ok]


def _met_by_any(spec: Spec, perfs) -> bool:
    values = {"gain_db": np.array([p.gain_db for p in perfs]), "ugf_hz": np.array([p.ugf_hz for p in perfs]),
              "pm_deg": np.array([p.pm_deg for p in perfs])}
    meets = np.ones(len(perfs), dtype=bool)
    for b in spec.targets:
        v = values[b.metric]
        if b.min is not None:
            meets &= v >= b.min
        if b.max is not None:
            meets &= v <= b.max
    return bool(meets.any())


def stored_circuits(examples) -> NearestCircuits:
    """The training circuits indexed by measured performance: (d)'s lookup and (a)'s memory."""
    return NearestCircuits((e.circuit, e.performance) for e in examples if e.split == "train")


def random_topologies(n: int, seed: int) -> list[Circuit]:
    gen = OcbGenerator(seed=seed)
    return [gen.draw_values(gen.draw_topology()) for _ in range(n)]


def proposals(m: str, spec: Spec, args, k: int, model, refine, retrieval, miller):
    """Method m's candidates for spec k, and how it would propose again, batch by batch, while ngspice
    finds none meeting the spec (design_loop's `more`): the model samples wider (as `cktflow
    generate` does; with --memory then the nearest training circuits), random draws more, retrieval
    takes the next nearest; the fixed topology has no second guess."""
    n = args.n_candidates
    if m == "a":
        from cktflow.model.sample import WIDER_TEMPERATURES, propose_with_model, propose_wider
        wider = (args.wider_temperature,) if args.wider_temperature else WIDER_TEMPERATURES
        again = [("model-wider",
                  lambda: propose_wider(model, spec, n, seed=args.seed + k, refine=refine, temperatures=wider))]
        if args.memory:      # as `cktflow generate --memory`: then the nearest stored circuits
            again.append(("memory", lambda: retrieval.nearest(spec, n)))
        return propose_with_model(model, spec, n, seed=args.seed + k, refine=refine), again
    if m == "b":
        return (random_topologies(n, seed=args.seed * 100_000 + k),
                [("random", lambda: random_topologies(n, seed=args.seed * 100_000 + k + 50_000))])
    if m == "c":
        return [miller], []
    return retrieval.nearest(spec, n), [("retrieval", lambda: retrieval.nearest(spec, 2 * n)[n:])]


def run(args) -> dict:
    from cktflow.model.data import load_examples
    examples = load_examples()
    miller = Circuit.from_json(MILLER.read_text())
    retrieval = stored_circuits(examples) if "d" in args.methods or args.memory else None
    model = refine = None
    if "a" in args.methods:
        from cktflow.model.sample import load_model, load_refinement
        model = load_model(args.checkpoint)
        refine = None if args.no_refine else load_refinement(args.checkpoint)
    config = SizingConfig(stop_margin=args.margin)
    rows: dict[str, list[dict]] = {m: [] for m in args.methods}
    with SerialPool() as pool:
        fresh = None
        if args.fresh:
            fresh = fresh_performances(examples, args.fresh, args.seed, pool)
            print(f"{len(fresh)} fresh circuits of topologies outside the training split measured", file=sys.stderr)
        pairs = target_specs(examples, args.n_specs, args.seed, args.kind, args.uncovered, args.skip, fresh,
                             args.window_scale, args.usable_sources)
        specs = [replace(s, implicit=not args.user_targets_only) for s, _ in pairs]
        # is the circuit a spec was made from usable itself (does it meet its own spec, implicit
        # targets included)? A spec from an unusable circuit may have no usable solution at all.
        source_usable = [s.passes(p) for s, p in pairs]
        print(f"{sum(source_usable)} of {len(pairs)} specs come from a circuit that is usable in feedback",
              file=sys.stderr)
        for k, spec in enumerate(specs):
            for m in args.methods:
                t0 = time.perf_counter()
                cands, more = proposals(m, spec, args, k, model, refine, retrieval, miller)
                res = design_loop(spec, cands, METHODS[m], pool, budget=args.budget, top_k=args.top_k, want=1,
                                  seed=args.seed + k, config=config, more=() if args.no_second else more)
                usable = None
                if res.verified:     # does the verified circuit pass the implicit targets too?
                    usable = replace(spec, implicit=True).passes(res.verified[0].verification.performance)
                rows[m].append({"spec": spec.name, "success": bool(res.verified), "simulations": res.simulations,
                                "usable": usable, "source_usable": source_usable[k],
                                "seconds": time.perf_counter() - t0, "candidates": res.candidates,
                                "second_batch": res.second_batch,
                                "closest_shortfall": None if res.verified else (res.closest.shortfall if res.closest else None)})
            if args.json:     # after every spec, so an interrupted run still leaves its figures
                args.json.write_text(json.dumps({"partial": True, "rows": rows}, indent=1))
            done = {m: sum(r["success"] for r in rows[m]) for m in args.methods}
            print(f"[{k + 1}/{len(specs)}] " + "  ".join(f"{METHODS[m]} {done[m]}" for m in args.methods),
                  file=sys.stderr, flush=True)
        flywheel_rounds = run_flywheel(args, specs[:args.flywheel], examples, pool) if args.flywheel else None
    kind = args.kind + (f" x{args.window_scale:g}" if args.window_scale != 1 else "") \
        + (" uncovered" if args.uncovered else "") + (f" fresh-{args.fresh}" if args.fresh else "") \
        + (" usable-sources" if args.usable_sources else "")
    kind += " user-targets-only" if args.user_targets_only else ""
    return {"flywheel": flywheel_rounds, "n_specs": len(specs), "kind": kind, "budget": args.budget,
            "source_usable": sum(source_usable),
            "n_candidates": args.n_candidates, "top_k": args.top_k,
            "margin": args.margin, "rows": rows, "summary": {METHODS[m]: summarise(rows[m], args.budget) for m in args.methods}}


def run_flywheel(args, specs: list[Spec], examples, pool) -> list[dict]:
    """One flywheel round's effect: generate on `specs` with the model (round 1), append the verified
    circuits to a copy of the training data, fine-tune, generate on the same specs again (round 2)."""
    import tempfile

    from cktflow.dataset import Dataset, Record
    from cktflow.flow import flywheel

    with tempfile.TemporaryDirectory(prefix="cktflow-bench-") as tmp:
        db = Path(tmp) / "data.sqlite"
        with Dataset.open(db) as ds:
            ds.append(Record(e.circuit, e.performance, split=e.split, provenance={"source": "bench copy"},
                             simulator="ngspice", testbench="ocb") for e in examples)
        t0 = time.perf_counter()
        rounds = flywheel(specs, 2, Path(tmp) / "fly", dataset_path=db, checkpoint=args.checkpoint,
                          n=args.n_candidates, top_k=args.top_k, budget=args.budget, want=1,
                          finetune_epochs=args.flywheel_epochs, seed=args.seed, pool=pool, finetune_last=False)
        print(f"flywheel: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return [{k: v for k, v in r.items() if k != "rows"} for r in rounds]


#: checkpoints of the success-versus-simulations curve (and the budget itself)
WITHIN = (20, 50, 100)


def summarise(rows: list[dict], budget: int) -> dict:
    ok = [r for r in rows if r["success"]]
    within = {b: sum(r["simulations"] <= b for r in ok) / len(rows) if rows else 0.0
              for b in sorted({*(b for b in WITHIN if b < budget), budget})}
    return {"success_rate": len(ok) / len(rows) if rows else 0.0, "success_within": within,
            "successes": len(ok), "usable_successes": sum(bool(r.get("usable")) for r in ok),
            "success_rate_usable_sources": (sum(r["success"] for r in rows if r.get("source_usable"))
                                            / max(1, sum(bool(r.get("source_usable")) for r in rows))),
            "median_simulations": statistics.median(r["simulations"] for r in ok) if ok else None,
            "median_seconds": statistics.median(r["seconds"] for r in ok) if ok else None,
            "mean_seconds_all": statistics.mean(r["seconds"] for r in rows) if rows else None}


def print_table(out: dict) -> None:
    print(f"{out['n_specs']} {out['kind']} specs, budget {out['budget']} ngspice runs each, {out['n_candidates']} candidates, "
          f"top-{out['top_k']} sized")
    print(f"{out['source_usable']} of the {out['n_specs']} specs come from a circuit that is itself usable in feedback")
    print(f"{'method':<10} {'success':>8} {'median sims':>12} {'median wall s':>14} {'usable/verified':>16} "
          f"{'success (usable sources)':>25}")
    for name, s in out["summary"].items():
        sims = "-" if s["median_simulations"] is None else f"{s['median_simulations']:.0f}"
        wall = "-" if s["median_seconds"] is None else f"{s['median_seconds']:.2f}"
        print(f"{name:<10} {100 * s['success_rate']:>7.1f}% {sims:>12} {wall:>14} "
              f"{s['usable_successes']:>7} of {s['successes']:<6} {100 * s['success_rate_usable_sources']:>24.1f}%")
    budgets = list(next(iter(out["summary"].values()))["success_within"]) if out["summary"] else []
    print("success within the first B simulations of the same runs (an anytime curve, not separate runs):")
    print(f"{'method':<10} " + " ".join(f"{'B=' + str(b):>8}" for b in budgets))
    for name, s in out["summary"].items():
        print(f"{name:<10} " + " ".join(f"{100 * s['success_within'][b]:>7.1f}%" for b in budgets))


def print_flywheel(rounds: list[dict]) -> None:
    print(f"flywheel on {rounds[0]['specs']} of the specs (the same specs both rounds; round 2 uses the model "
          f"fine-tuned on round 1's verified circuits)")
    for r in rounds:
        sps = "-" if r["simulations_per_success"] is None else f"{r['simulations_per_success']:.1f}"
        print(f"round {r['round']}: success {100 * r['success_rate']:.1f}%, simulations per success {sps}, "
              f"appended {r['appended']}" + (f", fine-tuned {r['finetune_epochs']} epoch(s) on {r['train_circuits']} "
                                             f"circuits" if r["finetune_epochs"] else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-specs", type=int, default=100, help="target specs (from the test split)")
    ap.add_argument("--kind", choices=("window", "min"), default="window", help="shape of the target specs")
    ap.add_argument("--window-scale", type=float, default=1.0, metavar="S",
                    help="multiply the window's half-widths by S (0.5: +-2.5 dB, x/ 10^0.075, +-5 deg)")
    ap.add_argument("--uncovered", action="store_true",
                    help="only specs that no training circuit meets as measured (outside the data's coverage)")
    ap.add_argument("--usable-sources", action="store_true",
                    help="only specs whose source circuit is usable in feedback (meets its own spec with the "
                         "implicit targets): feasible by construction under today's rule")
    ap.add_argument("--fresh", type=int, default=0, metavar="N",
                    help="specs from N circuits drawn afresh (Ckt-Bench-101 procedure, another generator seed, "
                         "topologies outside the training split) instead of the test split")
    ap.add_argument("--skip", type=int, default=0, metavar="N",
                    help="pass over the first N specs of the draw (--skip 100: a development set disjoint "
                         "from the default benchmark)")
    ap.add_argument("--budget", type=int, default=200, help="ngspice runs per spec and method")
    ap.add_argument("--n-candidates", type=int, default=20, help="candidates per spec for (a), (b), (d)")
    ap.add_argument("--top-k", type=int, default=4, help="candidates sized per spec")
    ap.add_argument("--margin", type=float, default=0.01, help="sizing stop margin (normalised)")
    ap.add_argument("--methods", default="a,b,c,d", help="comma-separated subset of a,b,c,d")
    ap.add_argument("--checkpoint", default=None, help="model checkpoint for (a) (default: the shipped one)")
    ap.add_argument("--no-second", action="store_true",
                    help="no second batch of candidates when the first meets nothing (the loop as it was before)")
    ap.add_argument("--wider-temperature", type=float, default=None, metavar="T",
                    help="(a)'s second proposal at temperature T (default: cktflow's WIDER_TEMPERATURES)")
    ap.add_argument("--memory", action="store_true",
                    help="(a) as `cktflow generate --memory`: after its wider batch, the nearest training circuits")
    ap.add_argument("--no-refine", action="store_true", help="(a) without refinement of the decoded device values")
    ap.add_argument("--flywheel", type=int, default=0, metavar="N",
                    help="also measure one flywheel round on the first N specs (0: skip)")
    ap.add_argument("--flywheel-epochs", type=int, default=2, help="fine-tune epochs of that round")
    ap.add_argument("--user-targets-only", action="store_true",
                    help="specs without the implicit usable-in-feedback targets (the rule before them); the "
                         "table then says how many verified circuits would pass them")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write every row and the summary here")
    args = ap.parse_args()
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.window_scale <= 0 or (args.window_scale != 1 and args.kind != "window"):
        ap.error("--window-scale must be > 0 and applies to --kind window only")
    bad = [m for m in args.methods if m not in METHODS]
    if bad:
        ap.error(f"unknown method(s) {bad}; use a subset of {','.join(METHODS)}")
    out = run(args)
    print_table(out)
    if out["flywheel"]:
        print_flywheel(out["flywheel"])
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
