"""Checkpoint I/O: where the model's files live, how they are written and read back.

A checkpoint is a dict of tensors and plain values (a state_dict plus the configs), never a
pickled object, so it loads with `weights_only=True`. Every module of the model package that
saves or loads weights uses these functions; this module imports nothing above `network`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..resources import weights_dir
from .config import CktGenConfig
from .network import CktGen

__all__ = ["CHECKPOINT_NAME", "MODEL_NAME", "default_checkpoint", "resolve_device", "save_checkpoint",
           "load_checkpoint", "model_from_checkpoint", "export_weights"]

#: Full training state (resume from it) and the weights-only file that sampling loads.
CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.pt"


def default_checkpoint() -> Path:
    """The shipped model, trained by `cktflow train --recipe default`."""
    return weights_dir() / "default.pt"


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for, but torch sees no CUDA device")
    return torch.device(device)


def save_checkpoint(path: Path, state: dict) -> None:
    """Write atomically: a run killed while saving keeps its previous checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return torch.load(path, map_location=device, weights_only=True)


def model_from_checkpoint(state: dict, device: str | torch.device = "cpu") -> CktGen:
    model = CktGen(CktGenConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def export_weights(state: dict, path: Path) -> None:
    """The weights-only file: model state and configs, no optimizer (what sampling needs)."""
    save_checkpoint(path, {k: state[k] for k in ("config", "train_config", "model", "epoch", "train_topologies")
                           if k in state})
