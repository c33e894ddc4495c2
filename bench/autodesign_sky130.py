"""AutoCkt's task on sky130 (issue 19, benchmark (i)): how often, and within how many ngspice
simulations, does each method design a two-stage op-amp that meets a random target?

Targets are drawn uniformly from AutoCkt's ranges (its ngspice two-stage task): gain 200-400 V/V,
UGBW 1-25 MHz, PM >= 60 deg, supply current <= 0.1-10 mA (the `supply_a` max), 10 pF load, sky130
tt at 27 C, vdd 1.8 V (vcm: the template's own 1.1 V). Methods:

  (a) generate   cktflow's transistor-level generate as the CLI runs it: the four templates and the
                 model's 4 best proposals realised on sky130 (cktflow.transistor.realize) screened at
                 typical, the most promising sized
  (b) sizer      cktflow's transistor sizer on the fixed two-stage Miller template from its own sizes
  (c) random     random search over the same template's parameters (log-uniform within the same
                 bounds, snapped to the grid), stopping at the first point that meets the target

Success means verified by ngspice: the final circuit measured again with every testbench (op,
AC, swing, noise, the follower's steps; cktflow.flow.transistor.verify_transistor), all targets
and the implicit ones (stable, pm_min, peaking, every device saturated) met. Simulations are
counted up to the first point that met the target (each condition run of a point is one; the
verification runs are not counted). Wall time per success includes the library loads of the
processes that serve the method (loaded once per template for the whole run).

    .venv/bin/python bench/autodesign_sky130.py --targets 20 --out runs/autodesign_sky130.json

Prints one table: method, targets, success, median simulations and wall time per success, and
success within 20 / 50 / 100 / 200 simulations.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cktflow.flow.transistor import TransistorDesign, conditions_of, verify_transistor  # noqa: E402
from cktflow.flow.transistor_design import (SCREEN_AHEAD, generate_transistor, model_candidates,  # noqa: E402
                                           template_candidates)
from cktflow.sizing.transistor import (ConditionRun, TransistorSpace, measure_plan, run_jobs,  # noqa: E402
                                       size_transistor, sizing_spec)
from cktflow.spec import parse_spec  # noqa: E402
from cktflow.technology import load_technology  # noqa: E402
from cktflow.transistor import from_template  # noqa: E402
from cktflow.transistor.jobs import KeyedLocalSimulator, OpampJob  # noqa: E402

BUDGET = 200
WITHIN = (20, 50, 100, 200)


def draw_targets(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"gain_vv": float(rng.uniform(200, 400)), "ugbw_hz": float(rng.uniform(1e6, 25e6)),
             "pm_deg": 60.0, "supply_a_max": float(rng.uniform(0.1e-3, 10e-3))} for _ in range(n)]


def spec_of(t: dict, k: int):
    return parse_spec(f"""
name: autockt-{k}
pdk: sky130
conditions: {{vdd: 1.8V, load_cap: 10pF, corners: [tt], temperatures: [27]}}
targets:
  gain_db: {{min: {20 * math.log10(t['gain_vv']):.6f}dB}}
  ugf_hz: {{min: {t['ugbw_hz']:.6g}Hz}}
  pm_deg: {{min: {t['pm_deg']}deg}}
  supply_a: {{max: {t['supply_a_max']:.6g}A}}
""", source=f"<target {k}>")


def verified(circuit, spec, sim) -> tuple[bool, dict]:
    rep = verify_transistor(TransistorDesign("bench", circuit), spec, sim)
    return rep.passed, dict(rep.worst.items())


def run_sizer(spec, sim, seed):
    c = from_template("miller2")
    conds = conditions_of(spec, load_technology("sky130"), c)
    r = size_transistor(c, spec, conds, sim, seed=seed)
    return r.met, r.sims_to_met, r.simulations, r.circuit


def run_random(spec, sim, seed):
    c = from_template("miller2")
    tech = load_technology("sky130")
    conds = conditions_of(spec, tech, c)
    plan = measure_plan(spec, conds, tech.default_corner)
    work = sizing_spec(spec, plan)
    space = TransistorSpace.of(c)
    lo, hi = np.log10(np.array(space.bounds)).T
    rng = np.random.default_rng([seed, 11])
    dut, name, _ = c.dut()
    for k in range(1, BUDGET + 1):
        sizes = space.sizes(space.from_log(list(rng.uniform(lo, hi))))
        job = OpampJob(dut, name, tuple(sorted(sizes.items())), conditions=plan.typical, pdk=c.pdk,
                       noise=plan.noise, step=plan.step, swing=plan.swing)
        run = ConditionRun.of(plan.typical.label, run_jobs(sim, [job])[0])
        if run.ok and work.passes(run.performance):
            return True, k, k, c.with_sizes(**sizes)
    return False, None, BUDGET, None


#: What `generate` starts from, per compared variant (issue 20):
#: - "behavioural": the templates and the behavioural model's realised proposals (gain, UGF and PM
#:   only; the sky130 design issue's generate);
#: - "with-stored": those and the stored circuits nearest the spec, every one screened (no predictor);
#: - "sky130": the sky130 model: the templates, the full-spec generator's realised proposals and the
#:   stored circuits, screened best predicted first by the sky130 predictor, SCREEN_FIRST up front;
#: - "sky130-generator": the same candidates, every one screened (the generator without the ranking);
#: - "sky130-rank": "with-stored"'s candidates ranked by the predictor (the behavioural proposals);
#: - "sky130-refine": "sky130-rank" with every candidate's sizes first moved by the predictor;
#: - "retrieval": the stored circuits nearest the spec at their stored sizes, nothing else.
VARIANTS = ("behavioural", "with-stored", "sky130", "sky130-generator", "sky130-rank", "sky130-refine", "retrieval")
SCREEN_FIRST = 2 + SCREEN_AHEAD         # generate's default top_k (2), as `cktflow generate` screens
#: Variants that rank candidates with the sky130 predictor.
RANKED = ("sky130", "sky130-rank", "sky130-refine")


def generate_sources(variant: str, seed: int):
    from cktflow.flow.transistor_proposals import stored_candidates
    from cktflow.model.checkpoint import default_checkpoint
    from cktflow.model.full_spec_proposals import shipped_generator
    behavioural = partial(model_candidates, seed=seed, checkpoint=default_checkpoint())
    if variant == "behavioural":
        return (template_candidates, behavioural)
    if variant in ("sky130-rank", "sky130-refine", "with-stored"):
        return (template_candidates, behavioural, stored_candidates)
    if variant in ("sky130", "sky130-generator"):
        full = shipped_generator("sky130")
        if full is None:
            raise SystemExit("no shipped sky130 generator (cktflow/model/weights/sky130_generator.pt)")
        return (template_candidates, partial(model_candidates, seed=seed, checkpoint=full), stored_candidates)
    if variant == "retrieval":
        return (stored_candidates,)
    raise ValueError(f"unknown variant {variant!r} (known: {', '.join(VARIANTS)})")


def variant_predictor(variant: str):
    """The shipped sky130 predictor for the variants that rank with it, else None."""
    if variant not in RANKED:
        return None
    from cktflow.model.sizing_predictor import load_sizing_predictor, shipped_sizing_predictor
    path = shipped_sizing_predictor("sky130")
    if path is None:
        raise SystemExit("no shipped sky130 predictor (cktflow/model/weights/sky130_predictor.pt)")
    return load_sizing_predictor(path)


def run_generate(spec, sim, seed, variant: str = "behavioural", predictor=None):
    r = generate_transistor(spec, sim, sources=generate_sources(variant, seed), budget=BUDGET, seed=seed,
                            predictor=predictor, refine=variant == "sky130-refine",
                            screen_first=SCREEN_FIRST if predictor is not None else None)
    ok = bool(r.verified)
    # simulations until the winner met the spec: the screen of every candidate, then its sizing
    sims = None
    if ok:
        w = r.verified[0]
        others = r.screened - 1
        sims = others + (w.sizing.sims_to_met if w.sizing is not None and w.sizing.sims_to_met else 1)
        if w.sizing is not None:
            # sizing of candidates tried before the winner (all simulations they spent)
            sims += sum(o.sizing.simulations - 1 for o in r.outcomes if o is not w and o.sizing is not None)
    return ok, sims, r.simulations, (r.verified[0].circuit if ok else None), r


METHODS = {"generate": run_generate, "sizer": run_sizer, "random": run_random}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", type=int, default=20, help="number of random targets (AutoCkt used 100)")
    ap.add_argument("--methods", default="generate,sizer,random")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/autodesign_sky130.json")
    ap.add_argument("--range", default=None, metavar="A:B",
                    help="run only targets A..B-1 (to spread one run over processes; --summary-of joins them)")
    ap.add_argument("--summary-of", nargs="+", default=None, metavar="JSON",
                    help="print the table of these runs' rows together (same targets) and exit")
    args = ap.parse_args(argv)
    if args.summary_of:
        runs = [json.loads(Path(f).read_text()) for f in args.summary_of]
        if any(r["targets"] != runs[0]["targets"] for r in runs):
            raise SystemExit("--summary-of: the runs hold different targets")
        rows = {(r["method"], r["k"]): r for run in runs for r in run["rows"]}
        print(summary(list(rows.values()), runs[0]["targets"]))
        print_winners(list(rows.values()))
        return 0
    lo, hi = (int(x) for x in args.range.split(":")) if args.range else (0, args.targets)
    targets = draw_targets(args.targets, args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = json.loads(out.read_text()) if out.is_file() else {"targets": targets, "rows": []}
    if done["targets"][:len(targets)] != targets[:len(done["targets"])]:
        raise SystemExit(f"{out}: holds another run's targets; give another --out")
    have = {(r["method"], r["k"]) for r in done["rows"]}
    for method in args.methods.split(","):
        with KeyedLocalSimulator(timeout_s=180) as sim:
            for k, t in enumerate(targets):
                if (method, k) in have or not lo <= k < hi:
                    continue          # resumable: finished targets are not run again
                spec = spec_of(t, k)
                t0 = time.perf_counter()
                res = METHODS[method](spec, sim, args.seed + k)
                ok, sims, spent, circuit = res[:4]
                ver, worst = verified(circuit, spec, sim) if circuit is not None and method != "generate" else (ok, {})
                origin = "template miller2"
                if method == "generate":
                    origin = res[4].verified[0].candidate.origin if ok else None
                    if ok:
                        worst = dict(res[4].verified[0].report.worst.items())
                row = {"method": method, "k": k, "target": t, "met": bool(ok), "verified": bool(ver),
                       "sims_to_success": sims if ver else None, "simulations": spent,
                       "seconds": time.perf_counter() - t0, "worst": worst, "winner": origin if ver else None}
                done["rows"].append(row)
                out.write_text(json.dumps(done, indent=1))
                print(f"{method:<9} #{k:<3} {'OK ' if ver else 'no '} sims {sims} / {spent}  "
                      f"{row['seconds']:.1f} s  gain>={t['gain_vv']:.0f} ugbw>={t['ugbw_hz'] / 1e6:.1f}MHz "
                      f"I<={t['supply_a_max'] * 1e3:.2f}mA", flush=True)
    print()
    print(summary(done["rows"], targets))
    print_winners(done["rows"])
    return 0


def print_winners(rows: list[dict]) -> None:
    wins = [r.get("winner") for r in rows if r["method"] == "generate" and r["verified"]]
    if wins:
        model = sum(1 for w in wins if w and "model proposal" in w)
        print(f"\ngenerate's verified winners: {model} of {len(wins)} a realised model proposal, "
              f"{len(wins) - model} a template")


def summary(rows: list[dict], targets: list) -> str:
    head = ["method", "targets", "success", "median sims/success", "median wall/success"] + \
        [f"<= {n} sims" for n in WITHIN]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for method in METHODS:
        rs = [r for r in rows if r["method"] == method]
        if not rs:
            continue
        ok = [r for r in rs if r["verified"]]
        med_s = statistics.median(r["sims_to_success"] for r in ok) if ok else None
        med_t = statistics.median(r["seconds"] for r in ok) if ok else None
        cells = [method, str(len(rs)), f"{100 * len(ok) / len(rs):.1f} %",
                 f"{med_s:g}" if med_s is not None else "-", f"{med_t:.1f} s" if med_t is not None else "-"]
        cells += [f"{100 * sum(r['sims_to_success'] <= n for r in ok) / len(rs):.0f} %" for n in WITHIN]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
