"""`generate` at transistor level: candidate topologies -> a cheap screen -> sizing -> verification
at every condition -> the output folder (netlists, testbench, schematics, plots, op-point tables).

Candidates come from a list of sources, each `source(spec, tech) -> list[Candidate | Skipped]`: the
PDK's templates (cktflow.transistor.templates()) and the model's behavioural proposals for the
spec, realised on the PDK at their first gm/Id sizes (cktflow.transistor.realize); `design_at_pdk`
(what the CLI and the flywheel run) adds the stored circuits nearest the spec
(cktflow.flow.transistor_proposals) and ranks them all with the PDK's predictor. A proposal that
cannot be realised comes back as a Skipped with the reason, which the report lists.

Screening: each candidate is simulated once at the typical condition at its own sizes (the same
start point its sizing run would measure first, written to its sizing history, so the screen is
not paid twice); with a PDK predictor, the best predicted first and only as many as needed (see
generate_transistor). The best-screened `top_k` (shortfall at typical) are sized side by side, a
chunk of simulations each in turn (SIZING_CHUNK, doubling every round), until `want` are verified
or the budget is spent. Every candidate that sizing reports as meeting the spec is verified at
once: cktflow.flow.transistor.verify_transistor measures every testbench (op, AC, swing, noise,
the follower's steps) at every condition, and only that run decides "verified". A claim the
verification rejects (sizing leaves the follower's transient out unless the spec bounds it, so a
follower that oscillates can pass sizing) hands its place on to the next candidate. When nothing
is claimed, the closest miss is verified for the report.

Resuming: histories live in OUT/sizing/<candidate>.jsonl; a rerun into the same folder replays
them (cktflow.sizing.transistor) and re-simulates nothing sizing had finished.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from ..spec import Spec
from ..technology import Technology, load_technology
from ..transistor import TransistorCircuit, from_template, templates
from .candidates import Candidate, Skipped
from .transistor_proposals import refine_candidates
from .transistor import TransistorDesign, TransistorReport, conditions_of, verify_transistor

__all__ = ["Candidate", "Skipped", "template_candidates", "model_candidates", "MODEL_PROPOSALS", "CANDIDATE_SOURCES",
           "SCREEN_AHEAD", "SIZING_CHUNK", "design_at_pdk",
           "TransistorOutcome", "TransistorDesignResult", "generate_transistor", "PoolRunner"]

log = logging.getLogger(__name__)


def template_candidates(spec: Spec, tech: Technology) -> list[Candidate]:
    """The PDK's amplifier templates at their own sizes."""
    return [Candidate(from_template(name, pdk=tech.name), f"template {name}") for name in templates(tech.name)]


#: How many of the model's proposals are realised as candidates by default. Each costs one screening
#: simulation; the realisations start far from their behavioural figures (docs/benchmarks.md,
#: realisation fidelity), so a few distinct topologies are worth their screen, not dozens.
MODEL_PROPOSALS = 4


def model_candidates(spec: Spec, tech: Technology, *, n: int = MODEL_PROPOSALS, checkpoint=None,
                     guidance: bool = True, refine: bool = True, seed: int = 0) -> list[Candidate | Skipped]:
    """The model's `n` best proposals for the spec, each realised on the PDK at the spec's common
    mode and load; a proposal that cannot be realised comes back as a Skipped with the reason.

    Which model: `checkpoint` when given (a full-spec generator or the behavioural model), else the
    PDK's shipped full-spec generator (cktflow.model.full_spec_proposals), else the behavioural
    model. The full-spec generator reads every bound of the spec and its load and supply; the
    behavioural model reads gain, UGF and PM (guidance and refinement apply to it alone). Empty
    when n is 0, when the PDK has no realisation, or when the behavioural model is asked about a
    spec that bounds none of its three."""
    from ..model.full_spec_proposals import is_full_spec, load_full_spec_model, propose_full, shipped_generator
    from ..model.sample import propose
    from ..transistor.bench import Conditions
    from ..transistor.realize import REALIZATION_CONDITIONS, RealizationError, realize

    if n < 1:
        return []
    if tech.name != "sky130":
        log.info("no realisation of behavioural topologies on %s: templates only", tech.name)
        return []
    c = spec.conditions
    at = Conditions(vdd=c.vdd if c and c.vdd is not None else REALIZATION_CONDITIONS.vdd,
                    vcm=c.vcm if c and c.vcm is not None else REALIZATION_CONDITIONS.vcm,
                    cl=c.load_cap if c and c.load_cap is not None else Conditions().cl)   # a template's default load
    full = checkpoint if checkpoint is not None and is_full_spec(checkpoint) else (
        shipped_generator(tech.name) if checkpoint is None else None)
    if full is not None:
        proposals = propose_full(load_full_spec_model(full), spec, n, load_f=at.cl,
                                 vdd=at.vdd if at.vdd is not None else tech.supply_v, seed=seed)
        kind = "full-spec model proposal"
    elif not any(b.metric in ("gain_db", "ugf_hz", "pm_deg") for b in spec.targets):
        log.info("the spec bounds none of gain, UGF and PM, which the model is conditioned on: templates only")
        return []
    else:
        proposals = propose(spec, n, checkpoint=checkpoint, guidance=guidance, refine=refine, seed=seed)
        kind = "model proposal"
    out = []
    for k, proposal in enumerate(proposals):
        try:
            z = realize(proposal, pdk=tech.name, conditions=at, name=f"model{k + 1}_{proposal.topology_hash()[:8]}")
        except RealizationError as exc:
            out.append(Skipped(f"{kind} {k + 1} ({proposal.topology_hash()[:8]})",
                               f"cannot be realised on {tech.name}: {exc}"))
            continue
        stages = sum(1 for s in z.stages if s.role.startswith("S"))
        out.append(Candidate(z.circuit, f"{kind} {k + 1} realised ({stages} stage(s), S1 {z.s1_kind})"))
    return out


#: Candidates screened up front beyond the top_k that will be sized, when a predictor ranks them.
SCREEN_AHEAD = 2

#: Simulations each sized candidate gets in the first round of sizing; the chunk doubles every
#: round (16, 32, 64, ...), so two candidates share a budget of 200 in three rounds.
SIZING_CHUNK = 16


#: Where candidates come from, in order: the templates, then the model's realised proposals.
CANDIDATE_SOURCES: tuple[Callable[[Spec, Technology], list[Candidate | Skipped]], ...] = (
    template_candidates, model_candidates)


class PoolRunner:
    """`run(job)` over a SimPool, for code written against LocalSimulator (verify_transistor)."""

    def __init__(self, pool):
        self.pool = pool

    def run(self, job):
        return self.pool.map([job])[0]


@dataclass
class TransistorOutcome:
    candidate: Candidate
    screen_shortfall: float               # at typical, at the candidate's own sizes
    sizing: "object | None"               # cktflow.sizing.transistor.TransistorSizingResult
    report: TransistorReport | None       # the verification run (None: not verified)

    @property
    def circuit(self) -> TransistorCircuit:
        return self.sizing.circuit if self.sizing is not None else self.candidate.circuit

    @property
    def passed(self) -> bool:
        return self.report is not None and self.report.passed

    @property
    def margin(self) -> float | None:
        """The worst-case normalised margin of the verification run (negative: a miss)."""
        if self.report is None or not all(r.ok for r in self.report.results):
            return None
        return self.report.spec.min_margin(self.report.worst)

    @property
    def shortfall(self) -> float:
        if self.report is not None:
            return self.report.spec.shortfall(self.report.worst if all(r.ok for r in self.report.results) else None)
        if self.sizing is not None:
            return self.sizing.best.shortfall
        return self.screen_shortfall

    def to_dict(self) -> dict:
        return {"origin": self.candidate.origin, "name": self.circuit.name, "verified": self.passed,
                "margin": self.margin, "shortfall": self.shortfall, "screen_shortfall": self.screen_shortfall,
                "sizing": {k: v for k, v in self.sizing.to_dict().items() if k not in ("circuit", "conditions")}
                if self.sizing is not None else None,
                "verification": self.report.to_dict() if self.report is not None else None,
                "sizes": self.circuit.sizes(), "hash": self.circuit.canonical_hash()}


@dataclass
class TransistorDesignResult:
    spec: Spec
    outcomes: list[TransistorOutcome]     # verified first (largest worst-case margin first), then misses
    candidates: int
    screened: int                         # candidates simulated at their own sizes
    simulations: int                      # screening + sizing (each condition run of a point is one)
    verification_simulations: int         # the final runs (every testbench, every condition)
    seconds: float
    skipped: list[Skipped] = field(default_factory=list)   # what the sources could not make a candidate

    @property
    def verified(self) -> list[TransistorOutcome]:
        return [o for o in self.outcomes if o.passed]

    @property
    def closest(self) -> TransistorOutcome | None:
        misses = [o for o in self.outcomes if not o.passed]
        return min(misses, key=lambda o: o.shortfall) if misses else None

    def to_dict(self) -> dict:
        c = self.closest
        return {"spec": self.spec.to_dict(), "success": bool(self.verified), "verified": len(self.verified),
                "candidates": self.candidates, "screened": self.screened, "simulations": self.simulations,
                "verification_simulations": self.verification_simulations, "seconds": self.seconds,
                "closest_shortfall": None if self.verified or c is None else c.shortfall,
                "skipped": [{"origin": k.origin, "reason": k.reason} for k in self.skipped],
                "outcomes": [o.to_dict() for o in self.outcomes]}


def _history(history_dir: Path, i: int, cand: Candidate) -> Path:
    return history_dir / f"{i:02d}-{cand.circuit.name}.jsonl"


def generate_transistor(spec: Spec, simulator, *, sources: Sequence[Callable] = CANDIDATE_SOURCES,
                        budget: int = 200, top_k: int = 2, want: int = 1, seed: int = 0, config=None,
                        history_dir: str | Path | None = None, progress: bool = False, predictor=None,
                        refine: bool = True, screen_first: int | None = None,
                        on_progress: Callable[[str], None] | None = None) -> TransistorDesignResult:
    """From a transistor-level spec to verified circuits within `budget` simulations (screening and
    sizing; the verification runs come on top and are counted apart). See the module docstring.
    `simulator`: a LocalSimulator or a SimPool.
    `predictor` (cktflow.model.sizing_predictor): the candidates are screened best predicted first;
    with `screen_first` only that many (at least top_k) up front, the next top_k in predicted order
    only when those are sized and none is verified. With `refine` it also moves every candidate's
    first sizes toward the spec before the screen (cktflow.flow.transistor_proposals). It is left
    out when a candidate's load is not one it was trained at (sizing_predictor.covers).
    None: every candidate is screened, in the sources' order."""
    from ..sizing.transistor import TRANSISTOR_CONFIG, size_transistor

    if budget < 1 or top_k < 1 or want < 1:
        raise ValueError("budget, top_k and want must be at least 1")
    if spec.level != "transistor":
        raise ValueError(f"{spec.source}: generate_transistor needs a transistor-level spec (pdk: ...)")
    if history_dir is None:
        # sizing runs continue chunk by chunk from their histories: without a folder, a temporary one
        with tempfile.TemporaryDirectory(prefix="cktflow-sizing-") as tmp:
            return generate_transistor(spec, simulator, sources=sources, budget=budget, top_k=top_k, want=want,
                                       seed=seed, config=config, history_dir=tmp, progress=progress,
                                       predictor=predictor, refine=refine, screen_first=screen_first,
                                       on_progress=on_progress)
    t0 = time.perf_counter()
    say = on_progress or (lambda msg: log.info("%s", msg))
    tech = load_technology(spec.pdk)
    tech.require_installed()
    config = config or TRANSISTOR_CONFIG
    hdir = Path(history_dir)
    runner = PoolRunner(simulator) if hasattr(simulator, "map") else simulator
    seen, cands, skipped = set(), [], []
    proposed = [c for source in sources for c in source(spec, tech)]
    if predictor is not None:
        from ..model.sizing_predictor import covers
        loads = [conditions_of(spec, tech, c.circuit)[0].cl for c in proposed if isinstance(c, Candidate)]
        if not covers(predictor, loads):
            lo, hi = predictor.loads
            say(f"the {tech.name} predictor knows loads of {lo * 1e12:.3g}-{hi * 1e12:.3g} pF only: candidates at "
                f"{', '.join(sorted({f'{x * 1e12:.3g}' for x in loads}))} pF are screened unranked")
            predictor = None
    if predictor is not None and refine:
        proposed = refine_candidates(proposed, spec, predictor, seed=seed, on_progress=say)
    for c in proposed:
        if isinstance(c, Skipped):
            skipped.append(c)
            say(f"skipped {c.origin}: {c.reason}")
            continue
        h = c.circuit.canonical_hash()
        if h not in seen:
            seen.add(h)
            cands.append(c)
    if not cands:
        raise ValueError(f"no candidate topologies for {tech.name}")

    # screen: the start point of each candidate's sizing run, at typical (budget 1)
    if predictor is not None:
        # best predicted first: with `screen_first`, only those are screened until they are used up
        from ..model.sizing_predictor import predicted_shortfalls
        pred = predicted_shortfalls(predictor, [c.circuit for c in cands], spec,
                                    loads=[conditions_of(spec, tech, c.circuit)[0].cl for c in cands])
        cands = [cands[i] for i in sorted(range(len(cands)), key=lambda i: pred[i])]
    screens, sims = [], 0

    def screen(upto: int) -> None:
        """Screen the candidates not screened yet, in order, up to index `upto` (exclusive)."""
        nonlocal sims
        for i in range(len(screens), min(upto, len(cands))):
            if sims >= budget:
                break
            c = cands[i]
            conds = conditions_of(spec, tech, c.circuit)
            r = size_transistor(c.circuit, spec, conds, simulator, config=replace(config, budget=1), seed=seed + i,
                                history_path=_history(hdir, i, c))
            sims += r.simulations
            screens.append((i, r))
            sized[i] = r
            say(f"screened {c.origin}: shortfall {r.best.shortfall:.3g} at typical"
                + (" (meets the spec at every condition)" if r.met else ""))

    def screen_order() -> list[int]:
        return [i for i, _ in sorted(screens, key=lambda ir: (not ir[1].met, ir[1].best.y))]

    sized: dict[int, object] = {}
    screen(len(cands) if predictor is None or screen_first is None else max(screen_first, top_k))
    order = screen_order()
    reports: dict[int, TransistorReport] = {}
    vsims = 0

    def verified(i: int) -> bool:
        """Verify what sizing claims; only this run decides (the sizing runs leave the follower's
        transient out unless the spec bounds it, so a claim can still oscillate as a follower)."""
        nonlocal vsims
        say(f"verifying {cands[i].origin} at {len(sized[i].plan.conditions)} condition(s)")
        reports[i] = verify_transistor(TransistorDesign(cands[i].origin, sized[i].circuit), spec, runner,
                                       keep_waves=True)
        vsims += len(reports[i].results)
        if not reports[i].passed:
            say(f"{cands[i].origin}: sizing met the spec but verification did not; the next candidate is sized")
        return reports[i].passed

    n_passed = 0
    for i in order:                 # candidates that met the spec at their own sizes (the screen)
        if sized[i].met and n_passed < want:
            n_passed += verified(i)
    # top_k candidates are sized side by side, a chunk of simulations each in turn (best shortfall
    # first), the chunk doubling every round: a candidate that cannot reach the spec holds up the
    # others for one chunk, not for half the budget. A sizing run resumed with a larger budget
    # replays its history and continues the same sequence, so the chunks cost no simulation twice.
    slots = top_k                   # candidates sized at once, a passed one keeping its slot
    exhausted: set[int] = set()     # sizing could not go on (no new point within its chunk)
    chunk = SIZING_CHUNK
    while n_passed < want and sims < budget:
        pool = [i for i in order if not (i in reports and not reports[i].passed) and i not in exhausted]
        active = sorted((i for i in pool[:slots] if i not in reports), key=lambda i: sized[i].best.y)
        if not active:
            if len(screens) == len(cands):
                break
            # the screened ones are used up (passed, rejected or exhausted): screen the next top_k
            screen(len(screens) + top_k)
            order = screen_order()
            if all(i in reports for i in pool[:slots]):
                slots += top_k
            continue
        for n, i in enumerate(active):
            if sims >= budget:
                break
            c = cands[i]
            share = min(chunk, (budget - sims) // (len(active) - n))
            # this candidate's budget counts what it has spent (its screen and earlier chunks)
            before = sized[i].simulations
            say(f"sizing {c.origin} with up to {max(1, share)} more simulations")
            r = size_transistor(c.circuit, spec, conditions_of(spec, tech, c.circuit), simulator,
                                config=replace(config, budget=before + max(1, share)), seed=seed + i,
                                history_path=_history(hdir, i, c), progress=progress)
            sims += r.simulations - before
            sized[i] = r
            if r.simulations <= before:
                exhausted.add(i)
            say(f"{c.origin}: {'met' if r.met else 'not met yet'} after {r.simulations} simulations "
                f"(shortfall {r.best.shortfall:.3g})")
            if r.met:
                n_passed += verified(i)
                break               # the pool changed: recompute it
        else:
            chunk *= 2
    if not reports and sized:       # nothing claimed: the closest miss is verified, for the report
        verified(min(sized, key=lambda i: sized[i].best.shortfall))
    outcomes = [TransistorOutcome(cands[i], screen.best.shortfall, sized[i] if sized[i].points > 1 else None,
                                  reports.get(i)) for i, screen in screens]
    passed = sorted((o for o in outcomes if o.passed), key=lambda o: -(o.margin or 0.0))
    rest = sorted((o for o in outcomes if not o.passed), key=lambda o: (o.report is None, o.shortfall))
    return TransistorDesignResult(spec, passed + rest, len(cands), len(screens), sims, vsims,
                                  time.perf_counter() - t0, skipped)



def design_at_pdk(spec: Spec, simulator, *, n: int = MODEL_PROPOSALS, checkpoint=None, guidance: bool = True,
                  refine: bool = True, predictor="shipped", db=None, budget: int = 200, top_k: int = 2, want: int = 1,
                  seed: int = 0, history_dir: str | Path | None = None, progress: bool = False,
                  on_progress: Callable[[str], None] | None = None) -> TransistorDesignResult:
    """`generate` at a PDK as `cktflow generate` and the flywheel run it: the templates, the model's
    `n` realised proposals (model_candidates: checkpoint, guidance, refine) and the `n` stored
    circuits nearest the spec (`db`, default the PDK's store), ranked by the PDK's predictor and
    screened best predicted first, top_k + SCREEN_AHEAD up front (docs/benchmarks.md, issue 20:
    designer specs). `predictor`: "shipped" (the PDK's, when one ships), a loaded
    SizingPredictor, or None to screen every candidate in the sources' order."""
    from functools import partial

    from ..model.sizing_predictor import load_sizing_predictor, shipped_sizing_predictor
    from .transistor_proposals import stored_candidates

    if isinstance(predictor, str):
        if predictor != "shipped":
            raise ValueError(f"predictor: 'shipped', a SizingPredictor or None, not {predictor!r}")
        path = shipped_sizing_predictor(spec.pdk)
        predictor = load_sizing_predictor(path) if path is not None else None
    sources = (template_candidates,
               partial(model_candidates, n=n, checkpoint=checkpoint, guidance=guidance, refine=refine, seed=seed),
               partial(stored_candidates, n=n, db=db))
    return generate_transistor(spec, simulator, sources=sources, budget=budget, top_k=top_k, want=want, seed=seed,
                               history_dir=history_dir, progress=progress, on_progress=on_progress,
                               predictor=predictor, refine=False,
                               screen_first=None if predictor is None else top_k + SCREEN_AHEAD)
