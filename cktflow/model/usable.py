"""Teach the generator to propose circuits that are usable in feedback (issue 17).

Only 3 % of the Bench-101 training circuits are usable in feedback (stable as a unity-gain
follower, pm_min_deg near the design PM, peaking <= 6 dB), so a generator trained on them proposes
mostly topologies that oscillate as followers, and the refinement moves device values, not
topologies. This module gathers usable circuits from the TRAINING side only and fine-tunes the
generator (and its predictor) on them, mixed with the training split so it keeps what it knew:

- random draws of the generator's own family (the Ckt-Bench-101 procedure, generator seeds that
  neither the dataset (1) nor the benchmark's fresh specs (1000 + seed) use), measured by ngspice;
- the model's on-policy decodes: the generator decodes for training-split spec vectors, the
  predictor refines them toward a window and the implicit targets, ngspice measures them.

Every circuit whose topology occurs in the test split is dropped before anything sees it (the split
is by topology block, but a topology drawn again elsewhere would leak the test set), and no spec of
the benchmark is used: conditions come from training circuits' measurements, and each kept circuit
is labelled with what ngspice measured (hindsight), not with what it was decoded for.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..circuit import Circuit, OcbGenerator
from ..simulate import simulate
from ..spec import IMPLICIT_PEAKING_DB
from .checkpoint import MODEL_NAME, load_checkpoint, model_from_checkpoint
from .data import PM_SCALE_DEG, Example, build_tensor_data, spec_classes, spec_vector
from .onpolicy import WINDOW, _refined_decodes
from .predictor import PREDICTOR_NAME, finetune_predictor, load_predictor, predictor_path
from .sample import Refinement

__all__ = ["is_usable", "held_out_topologies", "random_examples", "decoded_examples", "gather", "thin_weights",
           "mix", "run_usable_finetune", "USABLE_SEEDS", "USABLE_INFO", "THIN_CELL"]

log = logging.getLogger(__name__)

#: Generator seeds of the random draws: the dataset is seed 1, bench/autodesign.py --fresh uses
#: 1000 + its seed; these are neither.
USABLE_SEEDS = range(2001, 2101)
#: Cells of the spec vector (model units: 20 dB, half a decade, 30 deg) over which thin_weights
#: counts the usable circuits gathered so far.
THIN_CELL = (0.2, 0.5, 30.0 / PM_SCALE_DEG)
#: What the run records beside its weights.
USABLE_INFO = "usable.json"
#: How far pm_min may sit below the design PM for a usable label: the PM half-width of the windows
#: the on-policy rounds and the benchmark use (a window spec's PM floor is its pm_min target).
PM_SLACK_DEG = WINDOW[2] * PM_SCALE_DEG


def is_usable(perf) -> bool:
    """Usable in feedback as a training label: stable as a follower, peaking <= 6 dB and pm_min no
    more than PM_SLACK_DEG below the design PM (so it meets the implicit targets of a window spec
    drawn around its own measurement), with a label the model can train on."""
    if perf is None or spec_vector(perf) is None or spec_classes(perf) is None:
        return False
    if perf.stable is not True or perf.peaking_db is None or perf.pm_min_deg is None:
        return False
    return perf.peaking_db <= IMPLICIT_PEAKING_DB and perf.pm_min_deg >= perf.pm_deg - PM_SLACK_DEG


def held_out_topologies(examples: Sequence[Example]) -> set[str]:
    """Topology hashes of the test split: nothing with one of these is ever trained on here."""
    return {e.circuit.topology_hash() for e in examples if e.split == "test"}


def random_examples(n: int, exclude: set[str], *, seeds: Sequence[int] = USABLE_SEEDS, pool=None,
                    progress: bool = False) -> list[Example]:
    """n circuits of the generator's family (n / len(seeds) from each seed), minus the topologies in
    `exclude`, measured by ngspice; every measured one comes back (the predictor learns from all)."""
    per = max(1, math.ceil(n / len(seeds)))
    circuits: dict[str, Circuit] = {}
    for s in seeds:
        if len(circuits) >= n:
            break
        for c in OcbGenerator(seed=s).take(per):
            if c.topology_hash() not in exclude:
                circuits.setdefault(c.canonical_hash(), c)
    unique = list(circuits.values())[:n]
    results = simulate(unique, pool, progress=progress)
    return [Example(c, r.performance, "train") for c, r in zip(unique, results) if r.ok]


def decoded_examples(model, refine: Refinement, train_examples: Sequence[Example], n: int, exclude: set[str], *,
                     seed: int = 0, batch: int = 512, temperatures: Sequence[float] = (1.0, 2.0), pool=None,
                     thin: Sequence[Example] | None = None, progress: bool = False) -> list[Example]:
    """The generator's decodes for n training spec vectors (and their refinements toward a window
    and the implicit targets around each), minus test topologies, measured by ngspice. The vectors
    are drawn uniformly from the labelled training rows or, given the usable circuits gathered so
    far (`thin`), by thin_weights: where those are scarce."""
    train = build_tensor_data(train_examples)
    rng = np.random.default_rng(seed)
    p = None if thin is None else thin_weights(train.spec, thin)
    gen = torch.Generator().manual_seed(seed)
    circuits: dict[str, Circuit] = {}
    starts = range(0, n, batch)
    if progress:
        from tqdm import tqdm
        starts = tqdm(starts, desc="usable decodes", unit="batch")
    for k, start in enumerate(starts):
        size = min(batch, n - start)
        rows = torch.as_tensor(rng.integers(0, len(train), size=size) if p is None else
                               rng.choice(len(train), size=size, p=p))
        for c in _refined_decodes(model, refine, train.spec[rows], temperatures[k % len(temperatures)], gen):
            if c.topology_hash() not in exclude:
                circuits.setdefault(c.canonical_hash(), c)
    unique = list(circuits.values())
    results = simulate(unique, pool, progress=progress)
    return [Example(c, r.performance, "train") for c, r in zip(unique, results) if r.ok]


def gather(model, refine: Refinement, examples: Sequence[Example], *, random_n: int, decodes: int, seed: int = 0,
           pool=None, progress: bool = False) -> tuple[list[Example], dict]:
    """Every circuit measured here (random draws and on-policy decodes, test topologies excluded)
    and a summary; `is_usable` picks the usable ones."""
    exclude = held_out_topologies(examples)
    train = [e for e in examples if e.split == "train" and e.circuit.topology_hash() not in exclude]
    t0 = time.perf_counter()
    drawn = random_examples(random_n, exclude, pool=pool, progress=progress) if random_n else []
    t1 = time.perf_counter()
    decoded = decoded_examples(model, refine, train, decodes, exclude, seed=seed, pool=pool,
                               progress=progress) if decodes else []
    t2 = time.perf_counter()
    info = {"random_measured": len(drawn), "random_usable": sum(is_usable(e.performance) for e in drawn),
            "random_seconds": round(t1 - t0, 1), "decodes": decodes, "decoded_measured": len(decoded),
            "decoded_usable": sum(is_usable(e.performance) for e in decoded), "decoded_seconds": round(t2 - t1, 1),
            "train_usable": sum(is_usable(e.performance) for e in train), "held_out_topologies_excluded": len(exclude)}
    return drawn + decoded, info


def thin_weights(spec: torch.Tensor, usable: Sequence[Example]) -> np.ndarray:
    """Probabilities over training spec vectors `spec` (N, 3): 1 / (1 + the usable circuits in the
    vector's cell of THIN_CELL), normalised, so that a second pass of decodes goes where usable
    circuits are still scarce (high design PM, for one: few circuits keep pm_min near a PM above
    90 deg)."""
    width = torch.tensor(THIN_CELL)
    counts: dict[tuple[int, ...], int] = {}
    for e in usable:
        key = tuple(torch.floor(torch.tensor(spec_vector(e.performance)) / width).long().tolist())
        counts[key] = counts.get(key, 0) + 1
    cells = torch.floor(spec / width).long().tolist()
    w = np.array([1.0 / (1 + counts.get(tuple(c), 0)) for c in cells])
    return w / w.sum()


def mix(train: Sequence[Example], usable: Sequence[Example], share: float, seed: int = 0) -> list[Example]:
    """The generator's fine-tune set: every usable circuit, plus training circuits drawn without
    replacement (the unusable ones) until the usable share of the set is `share` (or the training
    split runs out): the generator keeps knowing the whole family, but learns to propose from its
    usable part."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be within (0, 1], got {share}")
    rest = [e for e in train if not is_usable(e.performance)]
    want = int(round(len(usable) * (1 - share) / share))
    random.Random(seed).shuffle(rest)
    return list(usable) + rest[:want]


def run_usable_finetune(checkpoint: str | Path | None = None, out_dir: str | Path = "runs/usable", *, db=None,
                        random_n: int = 20000, decodes: int = 12288, thin_decodes: int = 6144, share: float = 0.5,
                        epochs: int = 10,
                        lr_scale: float = 0.3, predictor_epochs: int = 8, seed: int = 0, device: str = "cpu",
                        threads: int | None = 1, workers: int | None = None, ship: bool = False,
                        progress: bool = True) -> dict:
    """What `cktflow train --usable` does: gather usable circuits (module docstring), fine-tune the
    generator in `checkpoint` (default: the shipped one) on them mixed with the training split
    (usable share `share`), and its predictor on the training split plus every circuit measured
    here; writes OUT/model.pt, OUT/predictor.pt and OUT/usable.json. `thin_decodes` more decodes
    then go where the usable circuits gathered so far are scarce (thin_weights). Resumable by step:
    the measured circuits are cached in OUT/measured.jsonl (and measured-thin.jsonl), a finished
    fine-tune is not repeated."""
    from ..simulate import open_pool
    from .checkpoint import default_checkpoint
    from .data import _read_jsonl, _write_jsonl, load_examples
    from .finetune import finetune

    if threads is not None:
        torch.set_num_threads(threads)
    source = Path(checkpoint) if checkpoint else default_checkpoint()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    examples = load_examples(db)
    exclude = held_out_topologies(examples)
    train = [e for e in examples if e.split == "train" and e.circuit.topology_hash() not in exclude]
    measured_path = out / "measured.jsonl"
    info_path = out / USABLE_INFO
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    if measured_path.exists():
        measured = _read_jsonl(measured_path)
    else:
        generator = model_from_checkpoint(load_checkpoint(source, device), device)
        refine = Refinement(load_predictor(predictor_path(source), device))
        with open_pool(num_workers=workers, progress=progress) as pool:
            measured, info["gather"] = gather(generator, refine, examples, random_n=random_n, decodes=decodes,
                                              seed=seed, pool=pool, progress=progress)
        _write_jsonl(measured_path, measured)
        info_path.write_text(json.dumps(info, indent=1))
    thin_path = out / "measured-thin.jsonl"
    if thin_decodes and not thin_path.exists():
        generator = model_from_checkpoint(load_checkpoint(source, device), device)
        refine = Refinement(load_predictor(predictor_path(source), device))
        usable_so_far = [e for e in list(train) + measured if is_usable(e.performance)]
        t1 = time.perf_counter()
        with open_pool(num_workers=workers, progress=progress) as pool:
            thin = decoded_examples(generator, refine, train, thin_decodes, exclude, seed=seed + 1, pool=pool,
                                    thin=usable_so_far, progress=progress)
        info["thin"] = {"decodes": thin_decodes, "measured": len(thin),
                        "usable": sum(is_usable(e.performance) for e in thin),
                        "seconds": round(time.perf_counter() - t1, 1)}
        _write_jsonl(thin_path, thin)
        info_path.write_text(json.dumps(info, indent=1))
    if thin_path.exists():
        measured = measured + _read_jsonl(thin_path)
    # never a test topology, whatever a cached file holds
    measured = [e for e in measured if e.circuit.topology_hash() not in exclude]
    usable = {e.circuit.canonical_hash(): e for e in list(train) + measured if is_usable(e.performance)}
    mixed = mix(train, list(usable.values()), share, seed)
    info.update({"source": str(source), "train_circuits": len(train), "usable_circuits": len(usable),
                 "mixed_circuits": len(mixed), "share": share, "epochs": epochs, "lr_scale": lr_scale,
                 "predictor_epochs": predictor_epochs, "seed": seed})
    if not (out / MODEL_NAME).exists() or not (out / "generator.done").exists():
        # the generator's fine-tune (resumable by itself); its predictor step is ours, below
        finetune(source, build_tensor_data(mixed), out / "generator", epochs=epochs, lr_scale=lr_scale, seed=seed,
                 device=device, progress=progress, predictor=False)
        (out / MODEL_NAME).write_bytes((out / "generator" / MODEL_NAME).read_bytes())
        (out / "generator.done").write_text("")
    if not (out / PREDICTOR_NAME).exists():
        # the predictor learns every measured circuit, usable or not: where it steers is where they lie
        # the file keeps the record of its earlier rounds (on-policy, coverage) and adds this one
        previous = load_checkpoint(predictor_path(source)).get("onpolicy") or {}
        record = {"usable_circuits": len(usable), "measured": len(measured), "epochs": predictor_epochs,
                  "lr_scale": lr_scale, "seed": seed}
        finetune_predictor(predictor_path(source), build_tensor_data(list(train) + measured), out / PREDICTOR_NAME,
                           epochs=predictor_epochs, lr_scale=lr_scale, seed=seed, device=device, progress=progress,
                           onpolicy={**previous, "usable": record})
    info["seconds"] = round(info.get("seconds", 0) + time.perf_counter() - t0, 1)
    info_path.write_text(json.dumps(info, indent=1))
    if ship:
        target = default_checkpoint()
        target.write_bytes((out / MODEL_NAME).read_bytes())
        (target.parent / PREDICTOR_NAME).write_bytes((out / PREDICTOR_NAME).read_bytes())
    return {**info, "out": str(out), "model": str(out / MODEL_NAME), "shipped": ship}
