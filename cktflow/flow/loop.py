"""The closed loop behind `generate`: candidates -> simulate -> rank -> size -> verify, and the
output folder it writes (report, netlists, schematics, plots)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from spice_sim import SimResult

from ..circuit import Circuit, one_topology_at_a_time
from ..spec import Spec
from .verify import dumps

if TYPE_CHECKING:
    from ..dataset import NearestCircuits
    from ..sizing import SizingConfig, SizingResult

__all__ = ["Outcome", "LoopResult", "design_loop", "generate", "write_design_report", "run_provenance"]

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """A circuit the loop ends with: where it came from, how sizing went, and its verification run."""
    circuit: Circuit
    origin: str                       # "model", "model-wider", "memory", "random", "retrieval", ...
    first: SimResult                  # the candidate's first simulation
    sizing: "SizingResult | None"     # None when the candidate was not sized
    verification: SimResult | None    # a fresh ngspice run of `circuit` (with the waveform)
    spec: Spec

    @property
    def performance(self):
        if self.verification is not None:
            return self.verification.performance if self.verification.ok else None
        if self.sizing is not None:
            return self.sizing.best.performance
        return self.first.performance if self.first.ok else None

    @property
    def passed(self) -> bool:
        """Verified: the final ngspice run (not a prediction, not the sizing history) meets every target."""
        v = self.verification
        return v is not None and v.ok and self.spec.passes(v.performance)

    @property
    def shortfall(self) -> float:
        return self.spec.shortfall(self.performance)

    def to_dict(self) -> dict:
        perf = self.performance
        return {"verified": self.passed, "origin": self.origin, "shortfall": self.shortfall,
                "min_margin": self.spec.min_margin(perf) if perf is not None else None,
                "performance": perf.to_dict() if perf is not None else None,
                "checks": [r.__dict__ for r in self.spec.check(perf)] if perf is not None else [],
                "sized": self.sizing is not None,
                "sizing": {k: v for k, v in self.sizing.to_dict().items() if k != "circuit"} if self.sizing else None,
                "verification_failure": self.verification.failure if self.verification else None,
                "circuit": self.circuit.to_dict(), "hash": self.circuit.canonical_hash()}


@dataclass
class LoopResult:
    spec: Spec
    outcomes: list[Outcome]           # verified ones first (best objective first), then the closest misses
    simulations: int                  # ngspice runs spent: candidates' first simulations + sizing
    verification_runs: int            # the final re-measurements (not part of `simulations`)
    seconds: float
    candidates: int                   # distinct candidates simulated
    duplicates: int                   # candidates dropped as duplicates (same canonical hash)
    invalid: int                      # candidates that could not be realised (never simulated)
    second_batch: int = 0             # candidates of the later proposals, `more` (0: none asked for)

    @property
    def verified(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.passed]

    @property
    def closest(self) -> Outcome | None:
        misses = [o for o in self.outcomes if not o.passed]
        return min(misses, key=lambda o: o.shortfall) if misses else None

    def to_dict(self) -> dict:
        closest = self.closest
        return {"spec": self.spec.to_dict(), "success": bool(self.verified), "verified": len(self.verified),
                "simulations": self.simulations, "verification_runs": self.verification_runs,
                "seconds": self.seconds, "candidates": self.candidates, "duplicates": self.duplicates,
                "invalid": self.invalid, "second_batch": self.second_batch,
                "closest_shortfall": None if self.verified or closest is None else closest.shortfall,
                "outcomes": [o.to_dict() for o in self.outcomes]}


def design_loop(spec: Spec, circuits: Sequence[Circuit], origin: str, pool=None, *, budget: int = 200,
                top_k: int = 4, want: int = 1, seed: int = 0, config: "SizingConfig | None" = None,
                progress: bool = False, history_dir: str | Path | None = None, waves: int = 3,
                more: Sequence[tuple[str, Callable[[], Sequence[Circuit]]]] = ()) -> LoopResult:
    """From candidate circuits to verified ones within `budget` ngspice runs (first simulations included).

    Duplicates (by canonical hash) are dropped; the candidates are simulated in one batch. While fewer
    than `want` meet the spec as proposed, the proposals of `more` ((origin, propose) pairs, e.g. a
    wider sampling of the model) are called in turn, each once, and their candidates simulated too
    (budget permitting): a guess that ngspice shows to be off says more than any sizing of it can.
    `origin` names the first candidates' source, each pair's its own. All are ranked by the sizing
    objective (shortfall first); candidates already meeting the spec with the sizing
    margin need no sizing; otherwise the best `top_k` are sized in lockstep, one topology at a time
    (the best of each topology before the second best of any: near-copies of one circuit share one
    topology's limits, which sizing cannot move), each starting from its first simulation, sharing
    the remaining budget by successive halving (`size_many`), until `want` circuits meet the spec;
    while none does, the next `top_k` join every 64 simulations, up to `waves` groups. Every circuit
    reported as meeting the spec is re-simulated (the verification run) and only that run decides.
    Without a pool, one local ngspice process serves the whole loop.
    """
    from ..simulate import INVALID, simulate
    from ..sizing import SerialPool, SizingConfig, score, size_many

    if budget < 1 or top_k < 1 or want < 1 or waves < 1:
        raise ValueError("budget, top_k, want and waves must be at least 1")
    config = config or SizingConfig()
    t0 = time.perf_counter()
    seen: set[str] = set()

    def distinct(batch: Sequence[Circuit], room: int) -> tuple[list[Circuit], int]:
        """The first `room` circuits of batch not seen before, and how many repeats were passed over."""
        out, repeats = [], 0
        for c in batch:
            if len(out) == room:
                break
            h = c.canonical_hash()
            if h in seen:
                repeats += 1
            else:
                seen.add(h)
                out.append(c)
        return out, repeats

    unique, duplicates = distinct(circuits, budget)
    margin = config.stop_margin
    own_pool = pool is None
    if own_pool:
        pool = SerialPool()
    try:
        first = simulate(unique, pool, progress=progress, step=spec.needs_step())
        sims = sum(r.failure != INVALID for r in first)
        second = 0
        met = sum(_met_with_margin(spec, r, margin) for r in first)
        origins = [origin] * len(unique)
        for source, again in more:
            if sims >= budget or met >= want:
                break
            extra, dropped = distinct(again(), budget - sims)
            duplicates += dropped
            second += len(extra)
            log.info("%d of %d candidate(s) meet the spec as proposed (%d wanted): simulating %d more (%s)",
                     met, sims, want, len(extra), source)
            results = simulate(extra, pool, progress=progress, step=spec.needs_step())
            first += results
            unique += extra
            origins += [source] * len(extra)
            sims = sum(r.failure != INVALID for r in first)
            met += sum(_met_with_margin(spec, r, margin) for r in results)
        invalid = len(first) - sims
        ys = [score(spec, c, r, margin) for c, r in zip(unique, first)]
        shortfalls = [spec.shortfall(r.performance if r.ok else None) for r in first]
        order = sorted((i for i in range(len(unique)) if first[i].failure != INVALID), key=lambda i: ys[i])
        ready = [i for i in order if _met_with_margin(spec, first[i], margin)][:max(want, top_k)]
        log.info("%d candidate(s) simulated (%d duplicate(s), %d invalid, %d in a second batch); %d meet the "
                 "spec as proposed; best shortfall %.3g", sims, duplicates, invalid, second, len(ready),
                 min((shortfalls[i] for i in order), default=float("nan")))
        sized: dict[int, SizingResult] = {}
        left = budget - sims
        if len(ready) < want and left > 0:
            rest = [i for i in order if i not in ready]
            chosen = one_topology_at_a_time(rest, lambda i: unique[i].topology_hash())[:top_k * waves]
            if chosen:
                log.info("sizing the best %d candidate(s) (%d more in waves) with %d simulations left",
                         min(top_k, len(chosen)), max(0, len(chosen) - top_k), left)
                cfg = replace(config, budget=left + 1)    # +1: the start point, simulated above, is in its budget
                results = size_many([unique[i] for i in chosen], spec, pool, cfg, seed=seed,
                                    start_results=[first[i] for i in chosen], stop_after=want - len(ready),
                                    history_dir=history_dir, progress=progress, total_budget=left, wave=top_k)
                for i, r in zip(chosen, results):
                    sized[i] = r
                    sims += r.evaluations - 1
        # what to verify: every circuit claimed to meet the spec, and the closest miss when there is none
        keep = ready + [i for i in order if i in sized and i not in ready]
        final = {i: (sized[i].circuit if i in sized else unique[i]) for i in keep}
        claimed = [i for i in keep if (sized[i].met if i in sized else spec.passes(first[i].performance))]
        if not claimed and keep:
            claimed = [min(keep, key=lambda i: sized[i].best.shortfall if i in sized else shortfalls[i])]
        elif not keep and order:
            keep = claimed = [order[0]]
            final = {order[0]: unique[order[0]]}
        # the verification run measures everything a designer signs off: the AC sweep, the poles
        # and the follower's step response
        checks = dict(zip(claimed, simulate([final[i] for i in claimed], pool, keep_waveform=True, progress=False,
                                            step=True)))
    finally:
        if own_pool:
            pool.close()
    outcomes = [Outcome(final[i], origins[i], first[i], sized.get(i), checks.get(i), spec) for i in keep]
    passed = sorted((o for o in outcomes if o.passed),
                    key=lambda o: score(spec, o.circuit, o.verification, margin))
    rest = sorted((o for o in outcomes if not o.passed), key=lambda o: o.shortfall)
    return LoopResult(spec, passed + rest, sims, len(checks), time.perf_counter() - t0, len(unique) - invalid,
                      duplicates, invalid, second)


def _met_with_margin(spec: Spec, result: SimResult, margin: float) -> bool:
    return result.ok and spec.passes(result.performance) and spec.min_margin(result.performance) >= margin


def generate(spec: Spec, n: int = 32, *, top_k: int = 4, budget: int = 200, want: int = 3,
             checkpoint: str | Path | None = None, guidance: bool = True, refine: bool = True, seed: int = 0,
             pool=None, config: "SizingConfig | None" = None, progress: bool = False,
             history_dir: str | Path | None = None, memory: "NearestCircuits | None" = None) -> LoopResult:
    """The main job: the model proposes `n` candidates for `spec` (guided sampling, device values
    refined by its performance predictor), then `design_loop`. When they miss, the model proposes
    `n` more, sampled wider; with a `memory` (stored measured circuits) the `n` nearest the spec
    follow when those miss too: where the data is sparse, a stored neighbour can be a closer start
    for sizing than anything the model decodes (bench/autodesign.py --memory)."""
    from ..model.sample import load_model, load_refinement, propose, propose_wider

    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    t0 = time.perf_counter()
    candidates = propose(spec, n, checkpoint=checkpoint, guidance=guidance, refine=refine, seed=seed)
    log.info("the model proposed %d candidate(s) in %.1f s", len(candidates), time.perf_counter() - t0)

    def wider() -> list[Circuit]:
        return propose_wider(load_model(checkpoint), spec, n, guidance=guidance, seed=seed,
                             refine=load_refinement(checkpoint) if refine else None)
    more = [("model-wider", wider)]
    if memory is not None:
        more.append(("memory", lambda: memory.nearest(spec, n)))
    result = design_loop(spec, candidates, "model", pool, budget=budget, top_k=top_k, want=want, seed=seed,
                         config=config, progress=progress, history_dir=history_dir, more=more)
    result.seconds = time.perf_counter() - t0      # sampling included
    return result


def write_design_report(result: LoopResult, out_dir: str | Path, provenance: dict | None = None) -> dict:
    """The output folder of `generate`: report.md and report.json ranking the circuits (verified
    first, measured vs target), and per circuit its JSON, netlists, schematics and Bode plot."""
    from ..export import export_all
    from ..fsutil import atomic_write_text
    from ..report import design_report_markdown

    out = Path(out_dir)
    folder = out / "circuits"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("[0-9][0-9]-*"):    # an earlier run's ranking into the same folder
        stale.unlink()
    files = []
    for rank, o in enumerate(result.outcomes, 1):
        stem = f"{rank:02d}-{'verified' if o.passed else 'closest'}"
        atomic_write_text(folder / f"{stem}.json", o.circuit.to_json(indent=1) + "\n")
        written = export_all(o.circuit, folder, stem, o.verification, title=f"{result.spec.name} #{rank}")
        files.append({"json": f"circuits/{stem}.json",
                      **{k: str(Path(v).relative_to(out)) for k, v in written.items()}})
    data = {**result.to_dict(), "provenance": provenance or {}}
    for d, f in zip(data["outcomes"], files):
        d["files"] = f
    atomic_write_text(out / "report.json", dumps(data) + "\n")
    atomic_write_text(out / "report.md", design_report_markdown(result, files, provenance or {}))
    return data


def run_provenance(checkpoint: str | Path | None, seed: int) -> dict:
    """What produced a generate run: the model file and the predictor beside it that refines its
    values (paths and content hashes), a run id, the seed."""
    import hashlib
    import uuid

    from ..model.predictor import predictor_path
    from ..model.sample import default_checkpoint

    def digest(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()[:16] if p.is_file() else "missing"

    path = Path(checkpoint) if checkpoint else default_checkpoint()
    return {"model": str(path), "model_sha256": digest(path),
            "predictor_sha256": digest(predictor_path(path)), "run_id": uuid.uuid4().hex[:12], "seed": seed,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
