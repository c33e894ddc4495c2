"""The paper's evaluation protocol on the test split, plus what the paper does not measure.

Class protocol (CktGen): test circuits whose class triple never occurs in training are dropped;
test circuits are grouped by triple; in each of `rounds` rounds one real circuit per group supplies
the condition and one circuit is generated per group. The evaluator network judges R-precision
(pools of 32 specs), Spec-Acc, MM-D, FID and diversity. cktflow adds:

- Spec-Acc measured by ngspice: the generated circuits of the first `sim_rounds` rounds are
  simulated and their measured classes must equal the target triple;
- rows with and without the refinement of decoded device values by the performance predictor;
- novelty (canonical hash not in the training set) and the share novel *and* meeting its spec;
- the retrieval baseline: a training circuit with the target triple, drawn at random;
- the continuous protocol users get: specs taken from measured test circuits (loosened), circuits
  from `propose`, success measured by ngspice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..circuit import Circuit
from ..report import table
from ..simulate import simulate
from ..spec import Bound, Spec
from .checkpoint import load_checkpoint, model_from_checkpoint
from .data import TensorData, build_tensor_data, encode_circuits, load_examples, spec_classes
from .evaluator import Evaluator, load_evaluator, train_evaluator
from .metrics import diversity, frechet_distance, matching_distance, r_precision, validity_share
from .network import CktGen
from .sample import Guidance, Refinement, default_checkpoint, generate_for_classes, load_refinement, \
    propose_with_model

__all__ = ["ProtocolSettings", "class_protocol", "continuous_protocol", "model_generator", "retrieval_generator",
           "real_generator", "protocol_picks", "loosened_spec", "run_evaluation", "format_report", "PAPER_CKTGEN_ROW"]

log = logging.getLogger(__name__)

#: CktGen's published row on Ckt-Bench-101 (%, MM-D and FID as numbers), cktgen-model.md.
PAPER_CKTGEN_ROW = {"top1": 35.73, "top2": 55.93, "top3": 65.21, "spec_acc_evaluator": 47.57, "mmd": 0.385,
                    "fid": 6.092, "validity": 95.47}

#: A generator for the class protocol: (classes (N, 3), round) -> (circuit or None per row, share of
#: valid decodes in the first try per row).
ClassGenerator = Callable[[torch.Tensor, int], tuple[list[Circuit | None], list[float]]]


@dataclass(frozen=True)
class ProtocolSettings:
    rounds: int = 120          # the paper's number of rounds
    sim_rounds: int = 10       # rounds whose circuits are also simulated (ngspice Spec-Acc, novelty)
    pool: int = 32             # specs per R-precision pool
    seed: int = 0
    diversity_pairs: int = 300


def model_generator(model: CktGen, guidance: Guidance | None, seed: int = 0, candidates: int = 1,
                    refine: Refinement | None = None) -> ClassGenerator:
    def gen(classes: torch.Tensor, round_: int):
        return generate_for_classes(model, classes, guidance=guidance, seed=seed * 100_000 + round_,
                                    candidates=candidates, refine=refine)
    return gen


def retrieval_generator(train: TensorData, seed: int = 0) -> ClassGenerator:
    """The memorisation baseline: a random training circuit with exactly the target triple."""
    by_triple: dict[tuple, list[int]] = defaultdict(list)
    for i, t in enumerate(map(tuple, train.classes.tolist())):
        by_triple[t].append(i)
    rng = np.random.RandomState(seed)

    def gen(classes: torch.Tensor, round_: int):
        out = []
        for t in map(tuple, classes.tolist()):
            members = by_triple.get(t)
            out.append(train.circuits[members[rng.randint(len(members))]] if members else None)
        return out, [float(c is not None) for c in out]
    return gen


def real_generator(test: TensorData, picks: list[list[int]]) -> ClassGenerator:
    """The real test circuits that supplied the conditions: the evaluator's reference row."""
    def gen(classes: torch.Tensor, round_: int):
        circuits = [test.circuits[i] for i in picks[round_]]
        return circuits, [1.0] * len(circuits)
    return gen


def protocol_picks(train: TensorData, test: TensorData, settings: ProtocolSettings
                   ) -> tuple[list[tuple], list[list[int]]]:
    """The groups (class triples seen in training) and, per round, the test circuit picked per group."""
    seen = set(map(tuple, train.classes.tolist()))
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, t in enumerate(map(tuple, test.classes.tolist())):
        if t in seen:
            groups[t].append(i)
    triples = sorted(groups)
    rng = np.random.RandomState(settings.seed)
    picks = [[groups[t][rng.randint(len(groups[t]))] for t in triples] for _ in range(settings.rounds)]
    return triples, picks


@torch.no_grad()
def _embed(evaluator: Evaluator, circuits: Sequence[Circuit]) -> np.ndarray:
    out = []
    for k in range(0, len(circuits), 512):
        out.append(evaluator.embed_circuits(encode_circuits(circuits[k:k + 512])).numpy())
    return np.concatenate(out) if out else np.zeros((0, evaluator.config.d_latent))


def class_protocol(generator: ClassGenerator, evaluator: Evaluator, train: TensorData, test: TensorData,
                   settings: ProtocolSettings = ProtocolSettings(), *, simulate_fn=None, progress: bool = False
                   ) -> dict:
    """Run the protocol for one generator and return every metric (shares in %, as the paper)."""
    triples, picks = protocol_picks(train, test, settings)
    if not triples:
        raise ValueError("no test class triple occurs in training; nothing to evaluate")
    classes = torch.tensor(triples, dtype=torch.long)
    with torch.no_grad():
        spec_emb = evaluator.embed_specs(classes).numpy()
    train_hashes = set(train.hashes)
    rng = np.random.RandomState(settings.seed + 1)
    firsts, gen_emb_all, real_emb_all = [], [], []
    ranks: dict[int, list[float]] = {1: [], 2: [], 3: []}
    acc_eval, mmd, missing = [], [], 0
    per_group: dict[int, list[np.ndarray]] = defaultdict(list)
    sim_circuits, sim_targets = [], []
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=settings.rounds, desc="protocol", unit="round")
    for r in range(settings.rounds):
        circuits, first = generator(classes, r)
        firsts += first
        ok = [i for i, c in enumerate(circuits) if c is not None]
        missing += len(circuits) - len(ok)
        emb = _embed(evaluator, [circuits[i] for i in ok])
        gen_emb_all.append(emb)
        real_emb_all.append(_embed(evaluator, [test.circuits[i] for i in picks[r]]))
        with torch.no_grad():
            pred = evaluator.predict_classes(torch.as_tensor(emb, dtype=torch.float32)).numpy() if ok else []
        hit = np.zeros(len(circuits), dtype=bool)
        if ok:
            hit[ok] = (pred == classes[ok].numpy()).all(-1)
        acc_eval.append(hit)
        if ok:
            mmd.append((matching_distance(emb, spec_emb[ok]), len(ok)))
            for j, i in enumerate(ok):
                per_group[i].append(emb[j])
            order = rng.permutation(len(ok))
            for k in range(0, len(order), settings.pool):
                chunk = order[k:k + settings.pool]
                if len(chunk) < 2:
                    continue
                rp = r_precision(emb[chunk], spec_emb[np.array(ok)[chunk]])
                for top in ranks:
                    ranks[top].append(rp[top] * len(chunk))
        if r < settings.sim_rounds:
            sim_circuits += circuits
            sim_targets += triples
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    gen_emb = np.concatenate(gen_emb_all)
    real_emb = np.concatenate(real_emb_all)
    n_total = len(firsts)
    n_ranked = max(1, sum(len(e) for e in gen_emb_all))
    intra = [diversity(np.stack(v), settings.diversity_pairs, settings.seed) for v in per_group.values() if len(v) > 1]
    out = {
        "groups": len(triples), "rounds": settings.rounds, "generated": n_total, "unfilled": missing,
        "top1": 100 * sum(ranks[1]) / n_ranked, "top2": 100 * sum(ranks[2]) / n_ranked,
        "top3": 100 * sum(ranks[3]) / n_ranked,
        "spec_acc_evaluator": 100 * float(np.concatenate(acc_eval).mean()),
        "mmd": sum(m * k for m, k in mmd) / sum(k for _, k in mmd) if mmd else float("nan"),
        "fid": frechet_distance(gen_emb, real_emb) if len(gen_emb) > 1 else float("nan"),
        "diversity_inter": diversity(gen_emb, settings.diversity_pairs, settings.seed),
        "diversity_intra": float(np.mean(intra)) if intra else 0.0,
        "validity": 100 * validity_share(firsts),
    }
    if settings.sim_rounds > 0 and simulate_fn is not None:
        train_topologies = {c.topology_hash() for c in train.circuits}
        out.update(_simulated(sim_circuits, sim_targets, train_hashes, train_topologies, simulate_fn))
    return out


def _simulated(circuits: list[Circuit | None], targets: list[tuple], train_hashes: set[str],
               train_topologies: set[str], simulate_fn) -> dict:
    """ngspice Spec-Acc, novelty (as a design, and as a topology) and novel-and-meets-spec; also
    Spec-Acc with the implicit usable-in-feedback targets (a class triple names no PM bound, so
    pm_min_deg >= 45 deg, peaking_db <= 6 dB, stable)."""
    present = [i for i, c in enumerate(circuits) if c is not None]
    results = simulate_fn([circuits[i] for i in present])
    implicit = Spec((), name="usable in feedback")
    usable = np.zeros(len(circuits), dtype=bool)
    meets = np.zeros(len(circuits), dtype=bool)
    novel = np.zeros(len(circuits), dtype=bool)
    new_topology = np.zeros(len(circuits), dtype=bool)
    for i, res in zip(present, results):
        cls = spec_classes(res.performance) if res.ok else None
        meets[i] = cls is not None and tuple(cls) == tuple(targets[i])
        usable[i] = res.ok and implicit.passes(res.performance)
        novel[i] = circuits[i].canonical_hash() not in train_hashes
        new_topology[i] = circuits[i].topology_hash() not in train_topologies
    n = max(1, len(circuits))
    return {"simulated": len(present), "spec_acc_ngspice": 100 * meets.sum() / n,
            "spec_acc_ngspice_usable": 100 * (meets & usable).sum() / n, "novelty": 100 * novel.sum() / n,
            "novel_topology": 100 * new_topology.sum() / n,
            "novel_and_meets": 100 * (meets & novel).sum() / n,
            "distinct": 100 * len({circuits[i].canonical_hash() for i in present}) / n}


def loosened_spec(perf, name: str, gain_db: float = 5.0, ugf_factor: float = 1.25, pm_deg: float = 5.0) -> Spec:
    """A spec every circuit like the measured one meets: its gain, UGF and design PM, loosened."""
    return Spec((Bound("gain_db", min=perf.gain_db - gain_db), Bound("ugf_hz", min=perf.ugf_hz / ugf_factor),
                 Bound("pm_deg", min=perf.pm_deg - pm_deg)), name=name)


def continuous_protocol(model: CktGen, test_perfs: Sequence, train_hashes: set[str], *, n_specs: int = 100,
                        k: int = 5, guidance: bool = True, refine: Refinement | None = None, seed: int = 0,
                        simulate_fn=None, progress: bool = False) -> dict:
    """Specs from measured test circuits (gain >= 20 dB, PM >= 45 deg: amplifiers a designer would
    want), loosened; `propose` gives k candidates each; ngspice decides. Reports the share of specs
    whose first candidate meets the spec, whose best of k does, and novelty."""
    rng = np.random.RandomState(seed)
    pool = [p for p in test_perfs if p.gain_db is not None and p.gain_db >= 20 and p.pm_deg is not None
            and p.pm_deg >= 45 and p.ugf_hz]
    if not pool:
        raise ValueError("no test circuit qualifies as a continuous-spec target")
    chosen = [pool[i] for i in rng.choice(len(pool), size=min(n_specs, len(pool)), replace=False)]
    specs = [loosened_spec(p, f"test{i}") for i, p in enumerate(chosen)]
    cands: list[list[Circuit]] = []
    it = specs
    if progress:
        from tqdm import tqdm
        it = tqdm(specs, desc="continuous", unit="spec")
    for i, spec in enumerate(it):
        cands.append(propose_with_model(model, spec, k, guidance=guidance, refine=refine, seed=seed * 10_000 + i))
    flat = [c for cs in cands for c in cs]
    results = simulate_fn(flat)
    at = 0
    first, any_k, novel, novel_meets, n_cands = [], [], [], [], 0
    first_user, any_user = [], []
    for spec, cs in zip(specs, cands):
        res = results[at:at + len(cs)]
        at += len(cs)
        ok = [r.ok and spec.passes(r.performance) for r in res]
        user = [r.ok and spec.without_implicit().passes(r.performance) for r in res]
        first_user.append(bool(user and user[0]))
        any_user.append(any(user))
        nov = [c.canonical_hash() not in train_hashes for c in cs]
        first.append(bool(ok and ok[0]))
        any_k.append(any(ok))
        novel += nov
        novel_meets += [a and b for a, b in zip(ok, nov)]
        n_cands += len(cs)
    return {"specs": len(specs), "k": k, "success_at_1": 100 * float(np.mean(first)),
            f"success_at_{k}": 100 * float(np.mean(any_k)),
            "success_at_1_user_targets": 100 * float(np.mean(first_user)),
            f"success_at_{k}_user_targets": 100 * float(np.mean(any_user)),
            "novelty": 100 * float(np.mean(novel)) if novel else 0.0,
            "novel_and_meets": 100 * float(np.mean(novel_meets)) if novel_meets else 0.0,
            "candidates": n_cands}


def run_evaluation(checkpoint=None, *, db=None, settings: ProtocolSettings = ProtocolSettings(),
                   evaluator_path=None, candidates: int = 8, baselines: bool = True, continuous_specs: int = 100,
                   progress: bool = False) -> dict:
    """Everything `cktflow evaluate` prints: the class protocol guided and not, best of `candidates`
    and single, with the device values refined by the model's performance predictor (when it has
    one) and, for comparison, without; the retrieval baseline and the real test circuits as
    references; the continuous protocol with and without guidance."""
    ckpt = Path(checkpoint) if checkpoint else default_checkpoint()
    state = load_checkpoint(ckpt)          # read once: the model and its training topologies
    model = model_from_checkpoint(state)
    refine = load_refinement(ckpt)
    examples = load_examples(db)
    train = build_tensor_data([e for e in examples if e.split == "train"])
    test_examples = [e for e in examples if e.split == "test"]
    seen_topologies = set(state.get("train_topologies", ()))
    if seen_topologies:
        # a dataset split other than the model's own must not put training topologies in the test set
        kept = [e for e in test_examples if e.circuit.topology_hash() not in seen_topologies]
        if len(kept) < len(test_examples):
            log.warning("%d test circuits have topologies the model was trained on; left out",
                        len(test_examples) - len(kept))
        test_examples = kept
    test = build_tensor_data(test_examples)
    if len(test) == 0:
        raise ValueError("the dataset has no test circuits the model has not been trained on")
    ev_path = Path(evaluator_path) if evaluator_path else ckpt.parent / "evaluator.pt"
    if ev_path.exists():
        evaluator = load_evaluator(ev_path)
    else:
        log.info("no evaluator at %s: training one on the training split", ev_path)
        evaluator = train_evaluator(train, ev_path, progress=progress)

    def sim(circuits):
        return simulate(circuits, progress=progress)

    report: dict = {"checkpoint": str(ckpt), "train_circuits": len(train), "test_circuits": len(test),
                    "settings": settings.__dict__, "class_protocol": {}, "continuous_protocol": {},
                    "usable_share": usable_share(examples)}
    refined = ", refined" if refine is not None else ""
    variants = [(f"cktflow guided, best of {candidates}{refined}", Guidance(), candidates, refine),
                (f"cktflow no guidance, best of {candidates}{refined}", None, candidates, refine),
                (f"cktflow guided{refined}", Guidance(), 1, refine), (f"cktflow no guidance{refined}", None, 1, refine)]
    if refine is not None:     # what the refinement adds, side by side
        variants += [(f"cktflow no guidance, best of {candidates}, unrefined", None, candidates, None),
                     ("cktflow no guidance, unrefined", None, 1, None)]
    if candidates == 1:
        variants = [v for v in variants if v[2] == 1]
    for name, guidance, k, ref in variants:
        report["class_protocol"][name] = class_protocol(
            model_generator(model, guidance, settings.seed, candidates=k, refine=ref), evaluator, train, test,
            settings, simulate_fn=sim, progress=progress)
    if baselines:
        report["class_protocol"]["retrieval baseline"] = class_protocol(
            retrieval_generator(train, settings.seed), evaluator, train, test, settings, simulate_fn=sim,
            progress=progress)
        _, picks = protocol_picks(train, test, settings)
        report["class_protocol"]["real test circuits"] = class_protocol(
            real_generator(test, picks), evaluator, train, test, settings, simulate_fn=sim, progress=progress)
    if continuous_specs > 0:
        perfs = [e.performance for e in test_examples]
        runs = [("cktflow propose (guided)", True, refine), ("cktflow propose (no guidance)", False, refine)]
        if refine is not None:
            runs.append(("cktflow propose (guided, unrefined)", True, None))
        for name, g, ref in runs:
            report["continuous_protocol"][name] = continuous_protocol(
                model, perfs, set(train.hashes), n_specs=continuous_specs, guidance=g, refine=ref,
                seed=settings.seed, simulate_fn=sim, progress=progress)
    return report


def usable_share(examples) -> dict:
    """How many labelled circuits (with a UGF) are usable in feedback: meet the implicit targets."""
    implicit = Spec((), name="usable in feedback")
    perfs = [e.performance for e in examples if e.performance is not None and e.performance.ugf_hz]
    return {"with_ugf": len(perfs), "usable": sum(implicit.passes(p) for p in perfs),
            "stable": sum(bool(p.stable) for p in perfs)}


def format_report(report: dict) -> str:
    """The evaluation as text tables: the class protocol beside the paper's CktGen row, then the
    continuous protocol."""
    def f(v, digits=2):
        return "-" if v is None else f"{v:.{digits}f}"

    head = ["method", "Top-1", "Top-2", "Top-3", "Spec-Acc (eval)", "MM-D", "FID", "Validity",
            "Spec-Acc (ngspice)", "Spec-Acc (ngspice, usable)", "Novel", "Novel topology", "Novel & meets",
            "Div-inter", "Div-intra"]
    p = PAPER_CKTGEN_ROW
    rows = [["CktGen (paper, Bench-101)", f(p["top1"]), f(p["top2"]), f(p["top3"]), f(p["spec_acc_evaluator"]),
             f(p["mmd"], 3), f(p["fid"], 3), f(p["validity"]), "-", "-", "-", "-", "-", "-", "-"]]
    for name, r in report["class_protocol"].items():
        rows.append([name, f(r["top1"]), f(r["top2"]), f(r["top3"]), f(r["spec_acc_evaluator"]), f(r["mmd"], 3),
                     f(r["fid"], 3), f(r["validity"]), f(r.get("spec_acc_ngspice")),
                     f(r.get("spec_acc_ngspice_usable")), f(r.get("novelty")),
                     f(r.get("novel_topology")), f(r.get("novel_and_meets")), f(r["diversity_inter"], 3),
                     f(r["diversity_intra"], 3)])
    s = report.get("settings", {})
    lines = [f"Class protocol ({s.get('rounds')} rounds, ngspice on the first {s.get('sim_rounds')}; "
             f"{report.get('test_circuits')} test circuits, {report.get('train_circuits')} training circuits):",
             table(head, rows),
             "Spec-Acc (ngspice, usable): in the target class triple and usable in feedback (stable, "
             "pm_min_deg >= 45 deg, peaking_db <= 6 dB)."]
    if report.get("usable_share"):
        u = report["usable_share"]
        lines.append(f"Dataset circuits usable in feedback: {u['usable']} of {u['with_ugf']} with a UGF "
                     f"({100 * u['usable'] / max(1, u['with_ugf']):.1f} %; stable in unity feedback: {u['stable']}).")
    if report.get("continuous_protocol"):
        chead = ["method", "specs", "success@1", "success@k", "k", "user targets only: @1", "@k", "novel",
                 "novel & meets"]
        crows = []
        for name, r in report["continuous_protocol"].items():
            k = r["k"]
            crows.append([name, str(r["specs"]), f(r["success_at_1"]), f(r[f"success_at_{k}"]), str(k),
                          f(r.get("success_at_1_user_targets")), f(r.get(f"success_at_{k}_user_targets")),
                          f(r["novelty"]), f(r["novel_and_meets"])])
        lines += ["", "Continuous protocol (specs from measured test circuits, loosened; ngspice decides; success "
                  "includes the implicit usable-in-feedback targets, 'user targets only' does not):",
                  table(chead, crows)]
    return "\n".join(lines)
