"""The recipe of the transistor-level predictor: `cktflow train --pdk sky130`.

Reads the PDK's dataset store (built by `cktflow dataset build --pdk`), trains the predictor of
cktflow.model.sizing_predictor on the training split (or fine-tunes a given one), measures it on
the test split (whole topologies the training never saw) and writes OUT/<pdk>_predictor.pt and
OUT/accuracy.json. `ship` installs the weights where `generate` finds them
(cktflow/model/weights/<pdk>_predictor.pt).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from .sizing_predictor import (Labelled, accuracy_table, labelled_examples, load_sizing_predictor,
                               save_sizing_predictor, shipped_path, train_sizing_predictor)

__all__ = ["run_sizing_recipe", "split_examples", "EPOCHS", "FINETUNE_EPOCHS", "SHIP_LIMIT_BYTES"]

#: Epochs from scratch (about 3 s an epoch per member on one thread for 3000 circuits) and of a fine-tune.
EPOCHS = 80
FINETUNE_EPOCHS = 20
#: The shipped weights' size limit (as for the behavioural model).
SHIP_LIMIT_BYTES = 20 * 2 ** 20
#: Share of the training split's circuits held out at random (not by topology): the predictor's
#: figures on sizings it has not seen of topologies it has, which is how `generate` uses it on the
#: templates and stored circuits (the test split measures unseen topologies).
HELD_OUT_SIZINGS = 0.1


def split_examples(db: str | Path) -> tuple[Labelled, Labelled]:
    """(train, test) examples of a store; FileNotFoundError naming the file when it does not exist."""
    from ..dataset import Dataset
    path = Path(db)
    if not path.exists():
        raise FileNotFoundError(f"dataset {path} does not exist (build it with `cktflow dataset build --pdk ...`)")
    with Dataset.open(path) as ds:
        data = labelled_examples(ds.records())
    if not len(data):
        raise ValueError(f"{path}: no measured transistor circuits to learn from")
    train = data.take([i for i, s in enumerate(data.split) if s == "train"])
    test = data.take([i for i, s in enumerate(data.split) if s == "test"])
    if not len(train):
        raise ValueError(f"{path}: the training split is empty")
    return train, test


def run_sizing_recipe(pdk: str, out_dir: str | Path, *, db: str | Path | None = None, epochs: int | None = None,
                      seed: int = 0, threads: int = 1, finetune_from: str | Path | None = None, ship: bool = False,
                      progress: bool = False) -> dict:
    from ..dataset.transistor_build import default_transistor_db

    t0 = time.perf_counter()
    torch.set_num_threads(threads)
    db = Path(db) if db is not None else default_transistor_db(pdk)
    train, test = split_examples(db)
    rng = np.random.default_rng(seed)
    held = set(rng.choice(len(train), size=int(round(HELD_OUT_SIZINGS * len(train))), replace=False).tolist())
    sizings = train.take(sorted(held))
    train = train.take([i for i in range(len(train)) if i not in held])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    init, source = None, "scratch"
    if finetune_from is not None:
        init, source = load_sizing_predictor(finetune_from), str(finetune_from)
    before = accuracy_table(init, test) if init is not None and len(test) else None
    n_epochs = epochs or (FINETUNE_EPOCHS if init is not None else EPOCHS)
    model = train_sizing_predictor(train, epochs=n_epochs, seed=seed, init=init, progress=progress,
                                   lr=5e-4 if init is not None else 2e-3)
    path = out / f"{pdk}_predictor.pt"
    save_sizing_predictor(model, path, pdk=pdk, db=str(db), train_circuits=len(train), epochs=n_epochs, source=source)
    table = accuracy_table(model, test) if len(test) else []
    summary = {"pdk": pdk, "db": str(db), "source": source, "train_circuits": len(train), "test_circuits": len(test),
               "test_topologies": len(set(test.topology)), "epochs": n_epochs, "seed": seed,
               "predictor": str(path), "bytes": path.stat().st_size, "accuracy": table,
               "accuracy_before": before, "held_out_sizings": len(sizings),
               "accuracy_held_out_sizings": accuracy_table(model, sizings) if len(sizings) else [],
               "seconds": time.perf_counter() - t0}
    (out / "accuracy.json").write_text(json.dumps(summary, indent=1))
    if ship:
        if path.stat().st_size > SHIP_LIMIT_BYTES:
            raise ValueError(f"{path}: {path.stat().st_size} bytes is over the shipped weights' limit "
                             f"({SHIP_LIMIT_BYTES} bytes)")
        dest = shipped_path(pdk)
        shutil.copyfile(path, dest)
        summary["shipped"] = str(dest)
    return summary
