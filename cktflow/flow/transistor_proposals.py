"""What the transistor-level data and model add to `generate` at a PDK: stored circuits as candidates,
and first sizes moved by the sky130 performance predictor.

- `stored_candidates`: the PDK's dataset store (`cktflow dataset build --pdk`, and what the
  flywheel appends) holds measured sized circuits; the `n` whose measured figures miss the spec
  least, one per netlist shape, are candidates at their stored sizes. Alone, this is the retrieval
  baseline of the benchmarks. Its figures were measured at the store's condition (typical,
  cktflow.model.sizing_predictor.TRAINED_AT), which is how sizing judges a point first too.
- `refine_candidates`: the predictor (cktflow.model.sizing_predictor) moves every candidate's sizes
  to where all its members predict the spec met, within the spread the dataset covers around a
  circuit's own sizes; a candidate the predictor cannot improve keeps its sizes. The screen then
  simulates the refined sizes, so a wrong prediction costs nothing beyond what the screen costs.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from ..spec import Spec
from ..technology import Technology
from .candidates import Candidate

__all__ = ["stored_candidates", "refine_candidates", "STORED_PROPOSALS"]

log = logging.getLogger(__name__)

#: Stored circuits offered as candidates by default (each costs one screening simulation).
STORED_PROPOSALS = 4


@lru_cache(maxsize=4)
def _stored(path: str, mtime: float) -> tuple:
    from ..dataset import Dataset
    from ..transistor import TransistorCircuit
    with Dataset.open(path) as ds:
        return tuple((r.circuit, r.performance) for r in ds.records()
                     if r.performance is not None and isinstance(r.circuit, TransistorCircuit))


def stored_candidates(spec: Spec, tech: Technology, *, n: int = STORED_PROPOSALS, db: str | Path | None = None,
                      split: str | None = None) -> list:
    """The n stored circuits of the PDK's store nearest the spec (smallest measured shortfall, one per
    netlist shape), as Candidates. Empty when there is no store. `split`: only rows of that split
    (a benchmark keeps its test topologies out)."""
    from ..dataset.transistor_build import default_transistor_db

    if n < 1:
        return []
    path = Path(db) if db is not None else default_transistor_db(tech.name)
    if not path.exists():
        log.info("no %s dataset store at %s: no stored candidates", tech.name, path)
        return []
    rows = _stored(str(path), path.stat().st_mtime)
    if split is not None:
        from ..dataset import Dataset
        with Dataset.open(path) as ds:
            keep = {r.hash for r in ds.records() if r.split == split}
        rows = tuple((c, p) for c, p in rows if c.canonical_hash() in keep)
    best: dict[str, tuple[float, object]] = {}
    for c, p in rows:
        if c.pdk != tech.name:
            continue
        s = spec.shortfall(p)
        t = c.topology_hash()
        if t not in best or s < best[t][0]:
            best[t] = (s, c)
    ranked = sorted(best.values(), key=lambda sc: sc[0])[:n]
    return [Candidate(c, f"stored circuit {c.name} {c.canonical_hash()[:8]} (measured shortfall {s:.2g})")
            for s, c in ranked]


def refine_candidates(cands: list, spec: Spec, predictor, *, seed: int = 0, on_progress=None) -> list:
    """Each Candidate with its sizes moved by the predictor toward the spec, at the load it will be
    measured with (module docstring)."""
    from ..model.sizing_predictor import refine_sizes
    from ..technology import load_technology
    from .transistor import conditions_of
    tech = load_technology(spec.pdk)

    out = []
    for i, c in enumerate(cands):
        if not isinstance(c, Candidate):
            out.append(c)
            continue
        try:
            r = refine_sizes(predictor, c.circuit, spec, load=conditions_of(spec, tech, c.circuit)[0].cl,
                             seed=seed + i)
        except ValueError as exc:          # a netlist the predictor does not read: keep it as it is
            log.info("%s: not refined (%s)", c.origin, exc)
            out.append(c)
            continue
        if r.circuit is c.circuit:
            out.append(c)
            continue
        if on_progress:
            on_progress(f"{c.origin}: sizes refined by the predictor (predicted shortfall "
                        f"{r.start_shortfall:.2g} -> {r.predicted_shortfall:.2g})")
        out.append(Candidate(r.circuit, f"{c.origin}, predictor-refined"))
    return out
