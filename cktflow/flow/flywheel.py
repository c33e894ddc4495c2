"""The flywheel: verified circuits go back into the data, and the model is fine-tuned on them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

from ..fsutil import atomic_write_text
from ..spec import Spec
from .loop import LoopResult, generate, run_provenance

__all__ = ["append_verified", "load_spec_list", "flywheel", "spec_rows", "round_tally"]


def spec_rows(specs: Sequence[Spec], rdir: Path, run_one) -> list[dict]:
    """One round's row per spec, resumable: a spec whose OUT/round-R/specs/NAME/row.json exists is read
    back; otherwise `run_one(i, spec, sdir)` designs it and returns its row, written atomically (a kill
    leaves it whole or absent)."""
    rows = []
    for i, spec in enumerate(specs):
        sdir = rdir / "specs" / spec.name
        row_file = sdir / "row.json"
        if row_file.is_file():
            rows.append(json.loads(row_file.read_text()))
            continue
        row = run_one(i, spec, sdir)
        sdir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(row_file, json.dumps(row))
        rows.append(row)
    return rows


def round_tally(r: int, rows: list[dict]) -> dict:
    """The round's figures every flywheel reports: success rate, simulations per success, rows appended."""
    wins = sum(x["success"] for x in rows)
    sims = sum(x["simulations"] for x in rows)
    return {"round": r, "specs": len(rows), "success": wins, "success_rate": wins / len(rows) if rows else 0.0,
            "simulations": sims, "simulations_per_success": sims / wins if wins else None,
            "appended": sum(x["appended"] for x in rows), "train_circuits": None, "rows": rows}


def append_verified(result: LoopResult, dataset_path: str | Path | None, provenance: dict) -> int:
    """Append the verified circuits of a loop to the dataset (training split), with their provenance:
    the model and run that proposed them, the spec, and the sizing run. A circuit whose topology is
    in the test split is stored without a split, so the test split stays unseen. Returns rows added."""
    from ..dataset import Dataset, Record
    from ..simulate import simulator_version, testbench_version

    if not result.verified:
        return 0
    with Dataset.open(dataset_path) as ds:
        test_topologies = {r["topology_hash"] for r in ds.query(
            "SELECT DISTINCT topology_hash FROM circuits WHERE split = 'test'")}
        records = []
        for o in result.verified:
            sizing = None
            if o.sizing is not None:
                sizing = {"evaluations": o.sizing.evaluations, "stop_reason": o.sizing.stop_reason,
                          "seed": provenance.get("seed")}
            prov = {**provenance, "source": "generate", "origin": o.origin, "spec": result.spec.to_dict(),
                    "sizing": sizing}
            split = None if o.circuit.topology_hash() in test_topologies else "train"
            records.append(Record.from_result(o.circuit, o.verification, prov, simulator=simulator_version(),
                                              testbench=testbench_version(), split=split))
        return ds.append(records)


def load_spec_list(path: str | Path) -> list[Spec]:
    """A YAML list of specs (each shaped like a spec file); errors name the file, the item and the field."""
    import yaml

    from ..spec import SpecError, parse_spec

    path = Path(path)
    try:
        items = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpecError(f"{path}: cannot read spec list: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(items, list) or not items:
        raise SpecError(f"{path}: expected a YAML list of specs (- name: ...\\n  targets: ...)")
    specs = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise SpecError(f"{path}: item {i + 1}: a spec is a mapping with a 'targets' section")
        item.setdefault("name", f"spec-{i + 1}")
        specs.append(parse_spec(yaml.safe_dump(item, sort_keys=False), source=f"{path} item {i + 1}"))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise SpecError(f"{path}: spec names must be unique (they name the output folders)")
    return specs


def flywheel(specs: Sequence[Spec], rounds: int, out_dir: str | Path, *, dataset_path: str | Path | None = None,
             checkpoint: str | Path | None = None, n: int = 32, top_k: int = 4, budget: int = 200, want: int = 1,
             finetune_epochs: int = 3, seed: int = 0, pool=None, progress: bool = False,
             on_round=None, finetune_last: bool = True) -> list[dict]:
    """Rounds of: generate for every spec, append the verified circuits to the dataset, fine-tune the
    model on the grown training split. Returns one summary per round (success rate, simulations per
    success). Resumable: finished specs and rounds are read back from out_dir instead of redone.
    `finetune_last=False` skips the fine-tune after the last round (when only its figures matter)."""
    from ..model.data import build_tensor_data, load_examples
    from ..model.finetune import finetune
    from ..model.sample import default_checkpoint

    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    out = Path(out_dir)
    ckpt = Path(checkpoint) if checkpoint else default_checkpoint()
    summaries = []
    for r in range(1, rounds + 1):
        rdir = out / f"round-{r}"
        done_file = rdir / "summary.json"
        if done_file.is_file():
            summary = json.loads(done_file.read_text())
            summaries.append(summary)
            ckpt = Path(summary["next_checkpoint"])
            if on_round:
                on_round(summary)
            continue
        t0 = time.perf_counter()

        def run_one(i, spec, sdir):
            prov = {**run_provenance(ckpt, seed + i), "flywheel_round": r}
            res = generate(spec, n, top_k=top_k, budget=budget, want=want, checkpoint=ckpt, seed=seed + i,
                           pool=pool, progress=progress, history_dir=sdir / "sizing")
            added = append_verified(res, dataset_path, prov)
            return {"spec": spec.name, "success": bool(res.verified), "simulations": res.simulations,
                    "seconds": res.seconds, "appended": added, "run_id": prov["run_id"]}

        summary = {**round_tally(r, spec_rows(specs, rdir, run_one)), "model": str(ckpt), "finetune_epochs": 0,
                   "next_checkpoint": str(ckpt)}
        if finetune_last or r < rounds:
            examples = load_examples(dataset_path)
            train_data = build_tensor_data([e for e in examples if e.split == "train"])
            state = finetune(ckpt, train_data, rdir / "model", epochs=finetune_epochs, seed=seed + r,
                             progress=progress)
            summary.update(train_circuits=len(train_data), finetune_epochs=state["epoch"],
                           next_checkpoint=str(rdir / "model" / "model.pt"))
        summary["seconds"] = time.perf_counter() - t0
        atomic_write_text(done_file, json.dumps(summary, indent=1))
        summaries.append(summary)
        ckpt = Path(summary["next_checkpoint"])
        if on_round:
            on_round(summary)
    return summaries
