"""Bayesian sizing: device values of a fixed topology tuned against a spec with ngspice in the loop.

`size(circuit, spec)` is the short way; `Sizer` exposes the ask/tell loop, and `size_many` runs
several sizers in lockstep so that each simulation batch fills the pool.
"""

from .objective import FAILED_PENALTY_EXTRA, Evaluation, failed_penalty, score
from .serial import SerialPool
from .sizer import SizingConfig, SizingResult, Sizer, size, size_many
from .space import SearchSpace

__all__ = ["FAILED_PENALTY_EXTRA", "Evaluation", "failed_penalty", "score", "SerialPool", "SizingConfig",
           "SizingResult", "Sizer", "size", "size_many", "SearchSpace"]
