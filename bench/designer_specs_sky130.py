"""Designer specs across corners on sky130 (issue 19, benchmark (ii)): how often, and within how
many simulations, does `generate` meet a full designer's spec at 3 corners x 3 temperatures?

Specs are drawn so that each is known feasible: spec k measures a random sized instance of one of
the four classic templates (ota5t, miller2, foldedcascode, nestedmiller3, in turn): every sizing
parameter of the template scaled by a log-uniform factor in [1/1.5, 1.5] (snapped onto the PDK's
grid, within its bounds), measured with every testbench at tt/ss/ff x -40/27/125 C (vdd 1.8 V, the
template's own common mode and load). An instance that is not usable at every condition (every
device saturated, stable, pm_min >= 45 deg, peaking <= 6 dB) is drawn again (at most 10 times).
The spec is the instance's worst case over the nine conditions, loosened: gain -3 dB, UGF x0.8,
PM (worst - 5 deg, clamped to 45-60 deg), power x1.25, slew x0.8, spot noise x1.25, swing x0.9,
CMRR and PSRR -6 dB. The specs never reach any training (there is no sky130 model yet).

`generate` then runs on each spec as `cktflow generate` does (the four templates and the model's
four realised proposals screened at typical, the best two sized: typical first, the other
conditions only for points that pass it),
budget 200; success = its own verification at all nine conditions passes. Simulations are counted
as in bench/autodesign_sky130.py (up to the first point that met the spec, each condition run one).

    .venv/bin/python bench/designer_specs_sky130.py --specs 50 --out runs/designer_specs_sky130.json

Resumable: finished specs are kept in --out and not run again. Prints one table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from autodesign_sky130 import VARIANTS, WITHIN, run_generate, variant_predictor  # noqa: E402

from cktflow.spec import parse_spec  # noqa: E402
from cktflow.technology import load_technology  # noqa: E402
from cktflow.transistor import Conditions, from_template  # noqa: E402
from cktflow.transistor.jobs import KeyedLocalSimulator, OpampJob  # noqa: E402
from cktflow.sizing.transistor import TransistorSpace  # noqa: E402

TEMPLATES = ("ota5t", "miller2", "foldedcascode", "nestedmiller3")
CORNERS, TEMPERATURES = ("tt", "ss", "ff"), (-40, 27, 125)
SPREAD = 1.5        # each parameter scaled by a log-uniform factor in [1/SPREAD, SPREAD]
TRIES = 10
# metric -> (direction, loosening): min targets get the worst (smallest) value, max targets the largest
LOOSEN = {"gain_db": ("min", lambda w: w - 3.0), "ugf_hz": ("min", lambda w: 0.8 * w),
          "pm_deg": ("min", lambda w: max(45.0, min(60.0, w - 5.0))), "power_w": ("max", lambda w: 1.25 * w),
          "slew_v_per_s": ("min", lambda w: 0.8 * w), "noise_v_per_rthz": ("max", lambda w: 1.25 * w),
          "swing_v": ("min", lambda w: 0.9 * w), "cmrr_db": ("min", lambda w: w - 6.0),
          "psrr_db": ("min", lambda w: w - 6.0)}


def usable(p) -> bool:
    return (p.get("all_saturated") is True and p.get("stable") is True
            and (p.get("pm_min_deg") or -1.0) >= 45.0 and p.get("peaking_db") is not None and p.get("peaking_db") <= 6.0)


def draw_instance(k: int, sim, seed: int):
    """(template, sizes, worst-case values over the nine conditions, tries) of spec k's instance."""
    name = TEMPLATES[k % len(TEMPLATES)]
    c = from_template(name)
    space = TransistorSpace.of(c)
    tech = load_technology("sky130")
    rng = np.random.default_rng([seed, k])
    own = dict(c.conditions)
    for attempt in range(1, TRIES + 1):
        x = [v * SPREAD ** rng.uniform(-1, 1) for v in space.start()]
        sizes = space.sizes(x)
        dut, dname, _ = c.with_sizes(**sizes).dut()
        perfs = []
        for corner in CORNERS:
            for temp in TEMPERATURES:
                cond = Conditions(corner=corner, temp_c=temp, vdd=1.8, vcm=own.get("vcm"), cl=own.get("cl", 5e-12))
                res = sim.run(OpampJob(dut, dname, tuple(sorted(sizes.items())), conditions=cond.resolved(tech)))
                perf = res.metrics.performance if getattr(res, "metrics", None) is not None else None
                if perf is None or not usable(perf):
                    break
                perfs.append(perf)
            if len(perfs) < len(TEMPERATURES) * (CORNERS.index(corner) + 1):
                break
        if len(perfs) == len(CORNERS) * len(TEMPERATURES):
            worst = {}
            for metric, (direction, _) in LOOSEN.items():
                vals = [p.get(metric) for p in perfs]
                if any(v is None for v in vals):
                    break
                worst[metric] = min(vals) if direction == "min" else max(vals)
            else:
                return name, sizes, worst, attempt, own
    return name, None, None, TRIES, own


def spec_from_row(k: int, row: dict):
    """The spec a run's row measured (its targets as stored), at its template's own conditions."""
    own = dict(from_template(row["template"]).conditions)
    lines = [f"name: designer-{k}", "pdk: sky130",
             f"conditions: {{vdd: 1.8V, vcm: {own.get('vcm', 0.9)}V, load_cap: {own.get('cl', 5e-12):.6g}F, "
             f"corners: [{', '.join(CORNERS)}], temperatures: [{', '.join(str(t) for t in TEMPERATURES)}]}}",
             "targets:"]
    for metric, bound in row["spec"].items():
        lines.append(f"  {metric}: {{" + ", ".join(f"{side}: {v:.6g}" for side, v in bound.items() if v is not None)
                     + "}")
    return parse_spec("\n".join(lines) + "\n", source=f"<designer spec {k}>")


def spec_of(k: int, worst: dict, own: dict):
    lines = [f"name: designer-{k}", "pdk: sky130",
             f"conditions: {{vdd: 1.8V, vcm: {own.get('vcm', 0.9)}V, load_cap: {own.get('cl', 5e-12):.6g}F, "
             f"corners: [{', '.join(CORNERS)}], temperatures: [{', '.join(str(t) for t in TEMPERATURES)}]}}",
             "targets:"]
    for metric, (direction, loosen) in LOOSEN.items():
        lines.append(f"  {metric}: {{{direction}: {loosen(worst[metric]):.6g}}}")
    return parse_spec("\n".join(lines) + "\n", source=f"<designer spec {k}>")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--specs", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/designer_specs_sky130.json")
    ap.add_argument("--variant", default="behavioural", choices=VARIANTS,
                    help="what generate starts from: the templates and the behavioural model's realised proposals "
                         "(behavioural); those and the stored sky130 circuits nearest the spec, sizes refined by the "
                         "sky130 predictor and screened best predicted first (sky130; sky130-rank without the "
                         "refinement); all of them, every one screened (with-stored, as `cktflow generate` runs); the "
                         "stored circuits only (retrieval)")
    ap.add_argument("--range", default=None, metavar="A:B",
                    help="run only specs A..B-1 (to spread one run over processes; --summary-of joins them)")
    ap.add_argument("--specs-from", nargs="+", default=None, metavar="JSON",
                    help="take each spec from these runs' rows (same --seed) instead of drawing its instance again "
                         "(the draw measures up to 10 instances at nine conditions)")
    ap.add_argument("--summary-of", nargs="+", default=None, metavar="JSON",
                    help="print the table of these runs' rows together and exit")
    args = ap.parse_args(argv)
    if args.summary_of:
        rows = {r["k"]: r for f in args.summary_of for r in json.loads(Path(f).read_text())["rows"]}
        print(summary(list(rows.values())))
        return 0
    lo, hi = (int(x) for x in args.range.split(":")) if args.range else (0, args.specs)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = json.loads(out.read_text()) if out.is_file() else {"seed": args.seed, "variant": args.variant, "rows": []}
    if done["seed"] != args.seed or done.get("variant", "behavioural") != args.variant:
        raise SystemExit(f"{out}: holds a run with another --seed or --variant; give another --out")
    predictor = variant_predictor(args.variant)
    reuse = {}
    for f in args.specs_from or []:
        other = json.loads(Path(f).read_text())
        if other["seed"] != args.seed:
            raise SystemExit(f"{f}: a run with --seed {other['seed']}, not {args.seed}")
        reuse.update({r["k"]: {**r, "_from": f} for r in other["rows"]})
    have = {r["k"] for r in done["rows"]}
    # 4 templates x 3 corners: one process each keeps its library loaded
    with KeyedLocalSimulator(timeout_s=180, max_processes=len(TEMPLATES) * len(CORNERS)) as sim:
        for k in range(args.specs):
            if k in have or not lo <= k < hi:
                continue
            t0 = time.perf_counter()
            if k in reuse:
                old = reuse[k]
                template, sizes, tries = old["template"], old["instance"], old["tries"]
                row = {"k": k, "template": template, "instance": sizes, "tries": tries, "draw_seconds": 0.0,
                       "spec_from": old["_from"]}
                worst = None if old.get("spec") is None else old["spec"]
            else:
                template, sizes, worst, tries, own = draw_instance(k, sim, args.seed)
                row = {"k": k, "template": template, "instance": sizes, "tries": tries,
                       "draw_seconds": time.perf_counter() - t0}
            if worst is None:
                row.update(spec=None, verified=False, skipped=True)
                print(f"spec #{k:<3} {template:<14} no usable instance in {tries} draws: skipped", flush=True)
            else:
                spec = spec_from_row(k, reuse[k]) if k in reuse else spec_of(k, worst, own)
                row["spec"] = {b.metric: {"min": b.min, "max": b.max} for b in spec.targets}
                t1 = time.perf_counter()
                ok, sims, spent, circuit, res = run_generate(spec, sim, args.seed + k, args.variant, predictor)
                row.update(verified=bool(ok), sims_to_success=sims if ok else None, simulations=spent,
                           winner=res.verified[0].candidate.origin if ok else None,
                           seconds=time.perf_counter() - t1, skipped=False,
                           # what each screened candidate spent (its screen and any sizing)
                           spent_by={o.candidate.origin: o.sizing.simulations if o.sizing is not None else 1
                                     for o in res.outcomes})
                print(f"spec #{k:<3} {template:<14} {'OK ' if ok else 'no '} sims {sims} / {spent}  "
                      f"{row['seconds']:.1f} s  winner {row['winner']}", flush=True)
            done["rows"].append(row)
            out.write_text(json.dumps(done, indent=1))
    print()
    print(summary(done["rows"]))
    return 0


def summary(rows: list[dict]) -> str:
    run = [r for r in rows if not r.get("skipped")]
    ok = [r for r in run if r["verified"]]
    head = ["specs", "skipped (no usable instance)", "success", "median sims/success", "median wall/success"] + \
        [f"<= {n} sims" for n in WITHIN]
    cells = [str(len(run)), str(len(rows) - len(run)),
             f"{100 * len(ok) / len(run):.1f} %" if run else "-",
             f"{statistics.median(r['sims_to_success'] for r in ok):g}" if ok else "-",
             f"{statistics.median(r['seconds'] for r in ok):.1f} s" if ok else "-"]
    cells += [f"{100 * sum(r['sims_to_success'] <= n for r in ok) / len(run):.0f} %" if run else "-" for n in WITHIN]
    by = {t: [r for r in run if r["template"] == t] for t in TEMPLATES}
    per = "; ".join(f"{t}: {sum(r['verified'] for r in rs)}/{len(rs)}" for t, rs in by.items() if rs)
    return "\n".join(["| " + " | ".join(head) + " |", "|---" * len(head) + "|", "| " + " | ".join(cells) + " |",
                      "", f"per template of the spec's instance: {per}"])


if __name__ == "__main__":
    sys.exit(main())
