"""Benchmark (iii) of issue 19: how near is a transistor realisation to its behavioural source?

Takes the behavioural circuits of the stored Ckt-Bench-101 labels (cktflow.model.data.load_examples)
that meet the implicit "usable in feedback" targets (stable as a unity-gain follower, pm_min_deg >=
45, peaking_db <= 6 dB), realises each on sky130 at its first sizes (cktflow.transistor.realize),
measures it with OpampBench (tt, 27 C, vdd 1.8 V, vcm 1.1 V, CL 50 fF: REALIZATION_CONDITIONS; op
point and AC only) on the Ray pool, and compares gain, UGF and PM with the behavioural labels.

Circuits whose realisation has the same netlist structure share one OpampJob deck (their sizes are
the job's parameters), so a worker loads the library once per structure, not once per circuit.

    python bench/realization_fidelity.py --count 288 --workers 2 [--json out.json]

Prints one table: per topology class and per transistor cell kind, the realised share, the share
with every device in saturation, the median |gain error| (dB), the median UGF ratio (realised /
behavioural) and the median PM difference (realised - behavioural, deg). A circuit that cannot be
realised is counted (and its RealizationError printed), never dropped.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cktflow.model.data import load_examples  # noqa: E402
from cktflow.simulate import open_pool  # noqa: E402
from cktflow.transistor.jobs import OpampJob  # noqa: E402
from cktflow.transistor.realize import REALIZATION_CONDITIONS, RealizationError, realize  # noqa: E402


def usable(perf) -> bool:
    pm, pk = perf.get("pm_min_deg"), perf.get("peaking_db")
    return perf.get("stable") is True and pm is not None and pm >= 45 and pk is not None and pk <= 6


def select(count: int) -> list:
    """The first `count` usable labelled circuits, in the stored order."""
    return [ex for ex in load_examples() if usable(ex.performance)][:count]


def jobs_for(realisations: list) -> list[OpampJob | None]:
    """One OpampJob per realisation; jobs of one netlist structure share the first one's deck."""
    decks: dict[str, str] = {}
    out = []
    for z in realisations:
        if z is None:
            out.append(None)
            continue
        text, name, sizes = z.circuit.dut()
        deck = decks.setdefault(z.circuit.body, text)
        out.append(OpampJob(deck, name, tuple(sorted(sizes.items())), REALIZATION_CONDITIONS,
                            noise=False, step=False, swing=False))
    return out


def row(name: str, items: list[dict]) -> dict:
    n = len(items)
    real = [x for x in items if x["realised"]]
    meas = [x for x in real if x.get("gain_db") is not None]
    sat = [x for x in meas if x["all_saturated"]]
    gerr = [abs(x["gain_db"] - x["beh_gain_db"]) for x in meas]
    ugf = [x["ugf_hz"] / x["beh_ugf_hz"] for x in meas if x.get("ugf_hz") and x.get("beh_ugf_hz")]
    pmd = [x["pm_deg"] - x["beh_pm_deg"] for x in meas if x.get("pm_deg") is not None and x.get("beh_pm_deg") is not None]
    med = lambda v: float(np.median(v)) if len(v) else math.nan  # noqa: E731
    return {"class": name, "n": n, "realised": len(real) / n if n else math.nan, "measured": len(meas),
            "all_saturated": len(sat) / len(meas) if meas else math.nan, "gain_err_db": med(gerr),
            "gain_diff_db": med([x["gain_db"] - x["beh_gain_db"] for x in meas]),
            "ugf_ratio": med(ugf), "ugf_n": len(ugf), "pm_diff_deg": med(pmd), "abs_pm_diff_deg": med([abs(x) for x in pmd]),
            "pm_within_15": float(np.mean(np.abs(pmd) <= 15)) if pmd else math.nan}


def table(records: list[dict]) -> list[dict]:
    groups: dict[str, list] = collections.OrderedDict(all=records)
    for r in records:
        groups.setdefault(f"{r['stages']} stages", []).append(r)
    for r in records:
        if r["realised"]:
            groups.setdefault(f"S1 = {r['s1_kind']}", []).append(r)
    kinds = sorted({k for r in records for k in r.get("cell_kinds", ())})
    for k in kinds:
        groups[f"has {k}"] = [r for r in records if k in r.get("cell_kinds", ())]
    return [row(k, v) for k, v in groups.items()]


def print_table(rows: list[dict]) -> None:
    print("| class | n | realised | measured | all saturated | median abs gain error (dB) | median gain diff (dB) | "
          "median UGF ratio (n) | median PM diff (deg) | median abs PM diff | abs PM diff <= 15 deg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['class']} | {r['n']} | {100 * r['realised']:.0f} % | {r['measured']} | "
              f"{100 * r['all_saturated']:.0f} % | {r['gain_err_db']:.1f} | {r['gain_diff_db']:+.1f} | {r['ugf_ratio']:.2f} ({r['ugf_n']}) | {r['pm_diff_deg']:+.1f} | "
              f"{r['abs_pm_diff_deg']:.1f} | {100 * r['pm_within_15']:.0f} % |")


def classic_equivalents() -> dict:
    """Behavioural equivalents of the four sky130 templates (gm from each template's measured UGF and
    Miller capacitors, C within the family's 10 fF-1.01 pF), with the template's load."""
    from cktflow.circuit import Circuit, Node

    def chain(stages, extra=(), extra_edges=()):
        nodes = [Node(0, 0), Node(1, 1)] + [Node(t, 2 + k, v) for k, (t, v) in enumerate(stages)]
        idx = [0] + list(range(2, 2 + len(stages))) + [1]
        nodes += [Node(t, pos, v) for t, pos, v in extra]
        return Circuit(tuple(nodes), tuple(zip(idx, idx[1:])) + tuple(extra_edges))

    return {
        # 5T: gm1 = 2 pi 4.6 MHz 5 pF = 0.145 mS
        "ota5t": (chain([(6, {"gm": 0.145e-3})]), 5e-12),
        # folded cascode: a single stage whose gm*R0 (54 dB at 0.5 mS) asks for a cascode
        "foldedcascode": (chain([(6, {"gm": 0.5e-3})]), 5e-12),
        # two-stage Miller: gm1 0.14 mS, gm2 ~1 mS, Cc 1 pF across the inverting second stage
        "miller2": (chain([(7, {"gm": 0.14e-3}), (10, {"C": 1e-12, "gm": 1e-3})]), 1e-12),
        # nested Miller: inverting, non-inverting (mirror), inverting; Cc1 1 pF out->n1, Cc2 0.8 pF across S3
        "nestedmiller3": (chain([(6, {"gm": 0.1e-3}), (7, {"gm": 0.2e-3}), (10, {"C": 0.8e-12, "gm": 2e-3})],
                                [(3, 6, {"C": 1e-12})], [(2, 5), (5, 1)]), 2e-12),
    }


def run_classics() -> None:
    from dataclasses import replace

    from spice_sim.engine import get_engine

    from cktflow.transistor import OpampBench, from_template
    eng = get_engine()
    print("| topology | CL | template gain / UGF / PM | realisation (S1 cell) gain / UGF / PM | all saturated |")
    print("|---|---|---|---|---|")
    for name, (c, cl) in classic_equivalents().items():
        out = []
        tpl = from_template(name)
        z = realize(c)
        for tc in (tpl, z.circuit):
            text, nm, sizes = tc.dut()
            with OpampBench(text, nm, sizes, engine=eng) as b:
                out.append(b.measure(replace(REALIZATION_CONDITIONS, cl=cl), noise=False, step=False, swing=False))
        t, r = out
        fmt = lambda m: f"{m.gain_db:.1f} dB / {m.ugf_hz / 1e6:.2f} MHz / {m.pm_deg:.1f} deg"  # noqa: E731
        print(f"| {name} | {cl * 1e12:g} pF | {fmt(t)} | {fmt(r)} ({z.s1_kind}) | {t.all_saturated} / {r.all_saturated} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=288, help="behavioural circuits to realise (usable ones, in order)")
    ap.add_argument("--workers", type=int, default=2, help="Ray pool workers")
    ap.add_argument("--json", type=Path, help="write every record and the table here")
    ap.add_argument("--table", type=Path, help="only print the table of a --json file written before")
    ap.add_argument("--classics", action="store_true",
                    help="instead: realise behavioural equivalents of the four templates and compare with them")
    args = ap.parse_args(argv)
    if args.classics:
        run_classics()
        return 0
    if args.table:
        print_table(table(json.loads(args.table.read_text())["records"]))
        return 0
    t0 = time.perf_counter()
    examples = select(args.count)
    records, realisations = [], []
    for k, ex in enumerate(examples):
        p = ex.performance
        rec = {"index": k, "topology": ex.circuit.topology_hash(), "beh_gain_db": p.get("gain_db"),
               "beh_ugf_hz": p.get("ugf_hz"), "beh_pm_deg": p.get("pm_deg"),
               "stages": sum(1 for n in ex.circuit.nodes if n.pos in (2, 3, 4))}
        try:
            z = realize(ex.circuit)
            rec.update(realised=True, s1_kind=z.s1_kind, cell_kinds=sorted({s.kind for s in z.stages if s.kind}),
                       inverting=z.inverting, notes=list(z.notes), params=len(z.circuit.params))
        except RealizationError as exc:
            z = None
            rec.update(realised=False, error=str(exc))
            print(f"not realised: circuit {k}: {exc}", file=sys.stderr)
        records.append(rec)
        realisations.append(z)
    t_realise = time.perf_counter() - t0
    jobs = jobs_for(realisations)
    todo = [j for j in jobs if j is not None]
    print(f"{len(examples)} usable circuits, {len(todo)} realised in {t_realise:.1f} s, "
          f"{len({j.dut for j in todo})} distinct netlist structures", file=sys.stderr)
    t1 = time.perf_counter()
    # one structure's jobs side by side, in chunks: a worker then loads each deck about once
    order = sorted(range(len(todo)), key=lambda k: (todo[k].dut, k))
    with open_pool(num_workers=args.workers, timeout_s=300, chunk_size=3) as pool:
        by_job = dict(zip(order, pool.map([todo[k] for k in order])))
    results = iter(by_job[k] for k in range(len(todo)))
    t_sim = time.perf_counter() - t1
    loads = 0
    for rec, job in zip(records, jobs):
        if job is None:
            continue
        res = next(results)
        if not res.ok:
            rec["failure"] = f"{res.failure}: {res.message[:200]}"
            continue
        m = res.metrics
        loads += res.loaded
        rec.update(gain_db=m.gain_db, ugf_hz=m.ugf_hz, pm_deg=m.pm_deg, all_saturated=bool(m.all_saturated),
                   min_margin_v=m.min_margin_v, worst_device=m.worst_device, power_w=m.power_w, area_um2=m.area_um2)
    if args.json:                 # the records first: the table can be made again from them (--table)
        args.json.write_text(json.dumps({"records": records}, indent=1, default=str))
    rows = table(records)
    print(f"\nRealisation fidelity, sky130 tt 27 C, vdd 1.8 V, vcm 1.1 V, CL 50 fF: {len(examples)} usable Bench-101 "
          f"circuits; simulated in {t_sim:.0f} s on {args.workers} workers ({loads} library loads)\n")
    print_table(rows)
    fails = [r for r in records if r.get("failure")]
    if fails:
        print(f"\n{len(fails)} realised circuits failed to simulate: " +
              "; ".join(sorted({r['failure'][:80] for r in fails})))
    if args.json:
        args.json.write_text(json.dumps({"records": records, "table": rows}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
