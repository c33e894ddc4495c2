"""The flywheel at transistor level (`cktflow flywheel` with specs at a PDK): per round, `generate`
for every spec, append each verified circuit to the PDK's dataset store, and fine-tune the PDK's
performance predictor on the grown training split; the next round's `generate` ranks its candidates
with the fine-tuned predictor. (The full-spec generator is not fine-tuned here: it learns from
realised circuits paired with their behavioural source, and a verified template or stored circuit
has none.)

What is stored: the store holds one condition per row (cktflow.dataset.transistor_build: typical,
27 C, its 5 pF load), which is what the predictor learns, so a verified circuit is measured once more
there (one simulation, counted apart) and that is its label; the verification at every condition of
the spec (corners, temperatures, the spec's load) travels in its provenance. A circuit whose netlist
shape is in the store's test split is stored without a split, so the test split stays unseen.

Each round's summary has the success rate and simulations per success of its specs, and the
predictor's accuracy on the test split before and after its fine-tune (cktflow.model.sizing_predictor
.accuracy_table). Resumable like the behavioural flywheel: finished specs and rounds are read back.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from ..fsutil import atomic_write_text
from ..spec import Spec
from .flywheel import round_tally, spec_rows

__all__ = ["append_verified_transistor", "flywheel_transistor"]


def append_verified_transistor(result, db: str | Path, provenance: dict, simulator) -> int:
    """Append the verified circuits of a TransistorDesignResult to the store (module docstring)."""
    from ..dataset import Dataset, Record
    from ..dataset.transistor_build import _conditions, testbench_version
    from ..technology import load_technology
    from ..transistor.jobs import OpampJob
    from .transistor_design import PoolRunner

    if not result.verified:
        return 0
    tech = load_technology(result.spec.pdk)
    runner = PoolRunner(simulator) if hasattr(simulator, "map") else simulator
    with Dataset.open(db) as ds:
        test_topologies = {r["topology_hash"] for r in ds.query(
            "SELECT DISTINCT topology_hash FROM circuits WHERE split = 'test'")}
        records = []
        for o in result.verified:
            c = o.circuit
            cond = _conditions(c, tech)
            dut, name, sizes = c.dut()
            res = runner.run(OpampJob(dut, name, tuple(sorted(sizes.items())), cond, pdk=tech.name))
            ok = getattr(res, "ok", False) and getattr(res, "metrics", None) is not None
            prov = {**provenance, "source": "generate", "origin": o.candidate.origin, "spec": result.spec.to_dict(),
                    "conditions": asdict(cond), "verification": o.report.to_dict()["conditions"]}
            split = None if c.topology_hash() in test_topologies else "train"
            records.append(Record(c, performance=res.metrics.performance if ok else None,
                                  failure=None if ok else (getattr(res, "failure", None) or "error"),
                                  message=getattr(res, "message", "") or "", split=split, provenance=prov,
                                  simulator=getattr(simulator, "simulator", "") or "ngspice",
                                  testbench=testbench_version(tech.name)))
        return ds.append(records)


def flywheel_transistor(specs: Sequence[Spec], rounds: int, out_dir: str | Path, *, dataset_path=None,
                        predictor_path=None, n: int = 4, top_k: int = 2, budget: int = 200,
                        finetune_epochs: int | None = None, seed: int = 0, pool=None, progress: bool = False,
                        on_round=None, finetune_last: bool = True) -> list[dict]:
    from ..dataset.transistor_build import default_transistor_db
    from ..model.sizing_predictor import accuracy_table, load_sizing_predictor, shipped_sizing_predictor
    from ..model.sizing_recipe import run_sizing_recipe, split_examples
    from .transistor_design import design_at_pdk

    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    pdks = {s.pdk for s in specs}
    if len(pdks) != 1 or None in pdks:
        raise ValueError("a transistor-level flywheel needs every spec at one PDK")
    pdk = pdks.pop()
    db = Path(dataset_path) if dataset_path is not None else default_transistor_db(pdk)
    if not db.exists():
        raise FileNotFoundError(f"dataset {db} does not exist (build it with `cktflow dataset build --pdk {pdk}`)")
    current = Path(predictor_path) if predictor_path is not None else shipped_sizing_predictor(pdk)
    if current is None:
        raise FileNotFoundError(f"no {pdk} predictor is shipped; train one (`cktflow train --pdk {pdk}`) "
                                "and pass it as --checkpoint")
    out = Path(out_dir)
    summaries = []
    for r in range(1, rounds + 1):
        rdir = out / f"round-{r}"
        done_file = rdir / "summary.json"
        if done_file.is_file():
            summary = json.loads(done_file.read_text())
            summaries.append(summary)
            current = Path(summary["next_predictor"])
            if on_round:
                on_round(summary)
            continue
        t0 = time.perf_counter()
        predictor = load_sizing_predictor(current)

        def run_one(i, spec, sdir):
            # as `cktflow generate` runs, ranked by this round's predictor (the last round's fine-tune)
            res = design_at_pdk(spec, pool, n=n, predictor=predictor, db=db, budget=budget, top_k=top_k,
                                seed=seed + i, history_dir=sdir / "sizing", progress=progress)
            added = append_verified_transistor(res, db, {"flywheel_round": r, "predictor": str(current),
                                                         "seed": seed + i}, pool)
            win = res.verified[0] if res.verified else None
            return {"spec": spec.name, "success": win is not None, "simulations": res.simulations,
                    "verification_simulations": res.verification_simulations, "seconds": res.seconds,
                    "appended": added, "winner": win.candidate.origin if win else None,
                    "winner_hash": win.circuit.canonical_hash() if win else None}

        summary = {**round_tally(r, spec_rows(specs, rdir, run_one)), "predictor": str(current),
                   "next_predictor": str(current), "accuracy_before": None, "accuracy_after": None}
        if finetune_last or r < rounds:
            _, test = split_examples(db)
            summary["accuracy_before"] = accuracy_table(predictor, test) if len(test) else []
            tuned = run_sizing_recipe(pdk, rdir / "predictor", db=db, epochs=finetune_epochs, seed=seed + r,
                                      finetune_from=current, progress=progress)
            summary.update(train_circuits=tuned["train_circuits"], next_predictor=tuned["predictor"],
                           accuracy_after=tuned["accuracy"])
        summary["seconds"] = time.perf_counter() - t0
        atomic_write_text(done_file, json.dumps(summary, indent=1))
        summaries.append(summary)
        current = Path(summary["next_predictor"])
        if on_round:
            on_round(summary)
    return summaries
