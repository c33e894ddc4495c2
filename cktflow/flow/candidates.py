"""What a source of candidate topologies gives `generate` at transistor level: a Candidate to screen,
or a Skipped with the reason it could not be one (the report lists those)."""

from __future__ import annotations

from dataclasses import dataclass

from ..transistor import TransistorCircuit

__all__ = ["Candidate", "Skipped"]


@dataclass(frozen=True)
class Candidate:
    circuit: TransistorCircuit
    origin: str                  # where it came from, e.g. "template miller2"


@dataclass(frozen=True)
class Skipped:
    """What a source could not turn into a candidate, and why: the report lists it."""
    origin: str
    reason: str
