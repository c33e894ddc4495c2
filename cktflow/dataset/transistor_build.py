"""Build a transistor-level dataset (`cktflow dataset build --pdk sky130`): behavioural topologies
of the Bench-101 family realised on the PDK and the PDK's op-amp templates, each at several sizes
drawn around its gm/Id first sizes, measured with every testbench at the typical corner on the
pool, stored with provenance in the same kind of store as the behavioural data (one SQLite file
per PDK, default <cache>/data/<pdk>.sqlite).

The draw, slot by slot (a slot is one topology and `per_topology` sizings of it):
- every TEMPLATE_EVERY-th slot is a template (in turn), the others a topology drawn by the
  Bench-101 procedure (cktflow.circuit.OcbGenerator with the build's seed) with its first device
  values, realised by cktflow.transistor.realize. A topology that cannot be realised is counted by
  reason in the summary (never stored: there is no transistor circuit to store) and its slot
  moves on to the next draw.
- sizing 0 is the first sizes themselves (a template's only in its first slot: the same circuit
  is stored once); the other sizings move all transistor lengths by one factor, all transistor
  widths by another and every bias current by a third (log-uniform in
  L_RANGE, W_RANGE, BIAS_RANGE: the choice of L, of gm/Id at a given current, and of the bias),
  then every parameter by its own small factor (JITTER), snapped onto the PDK's grid within the
  parameter's bounds. So the set covers each topology's design space, not one point of it.

Every circuit is measured at the typical corner, 27 C, the PDK's supply, its own common mode and
the load LOAD_F (or, with a load range, its own load drawn in that range: `load_of`), with every
testbench (operating point, AC, swing, noise, the follower's steps); the provenance holds the
conditions of each row.

Cost and order: a worker loads the PDK's library once per netlist shape (seconds) and measures a
new sizing of the loaded shape in a fraction of a second (cktflow.transistor.jobs), so the jobs of
one slot are one chunk of the pool. Resumable: the draw is deterministic for a seed, rows are keyed
by canonical hash and committed as they arrive, so a rerun measures only what is missing.
Split: whole topologies (plan_split over slots), so no test topology is seen in training; the
templates always train (every design offers them: a model that ranks them must have seen them),
so the test split measures realised topologies nobody has seen. A rerun of a build re-applies
the split to the rows it draws.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..cache import cache_dir
from .build import TEST_FRACTION, plan_split
from .store import Dataset, Record

__all__ = ["build_transistor_dataset", "draw_transistor_circuits", "TransistorBuildSummary", "Drawn",
           "default_transistor_db", "PER_TOPOLOGY", "TEMPLATE_EVERY", "LOAD_F", "GENERATOR_NAME", "load_of"]

log = logging.getLogger(__name__)

GENERATOR_NAME = "realised-bench101"
#: Sizings per topology (one chunk of the pool: one library load, then this many measurements).
PER_TOPOLOGY = 10
#: One slot in this many is a template (the four classic topologies among the realised ones).
TEMPLATE_EVERY = 5
#: Log-uniform ranges of the per-sizing factors (all lengths, all widths, all bias currents).
L_RANGE = (0.5, 2.0)
W_RANGE = (0.5, 2.0)
BIAS_RANGE = (1 / 3, 3.0)
JITTER = 1.15
#: The load every circuit of the set is measured with (the templates' own; a designer's load).
LOAD_F = 5e-12
#: Topologies the generator may draw for one realisable slot before the build gives up on it.
_MAX_DRAWS_PER_SLOT = 50
_COMMIT_EVERY_S = 1.0


def default_transistor_db(pdk: str) -> Path:
    """<cache dir>/data/<pdk>.sqlite."""
    return cache_dir() / "data" / f"{pdk}.sqlite"


@dataclass(frozen=True)
class Drawn:
    circuit: object              # a TransistorCircuit
    slot: int
    provenance: dict


@dataclass
class TransistorBuildSummary:
    db: str
    pdk: str
    n: int
    seed: int
    topologies: int = 0
    unrealisable: dict[str, int] = field(default_factory=dict)   # reason -> behavioural draws skipped
    already_stored: int = 0
    simulated: int = 0
    stored: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    train: int = 0
    test: int = 0
    workers: int = 0
    simulator: str = ""
    draw_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def per_minute(self) -> float:
        """Circuits measured per minute of this run (0 when nothing was measured)."""
        return 60.0 * self.simulated / self.seconds if self.simulated and self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {**dict(self.__dict__), "circuits_per_minute": self.per_minute,
                "circuits_per_minute_per_worker": self.per_minute / self.workers if self.workers else 0.0}


def _reason(exc: Exception) -> str:
    """A realisation failure's kind (its message up to the first number), for the summary's counts."""
    text = str(exc)
    cut = next((i for i, ch in enumerate(text) if ch.isdigit()), len(text))
    return text[:cut].strip(" :=(") or type(exc).__name__


def _kinds(circuit) -> dict[str, str]:
    from ..sizing.transistor import TransistorSpace
    return dict(TransistorSpace.of(circuit).keys)


def _vary(circuit, rng: np.random.Generator):
    """One sizing around the circuit's own (module docstring)."""
    def factor(lo_hi):
        lo, hi = lo_hi
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))

    f_l, f_w, f_i = factor(L_RANGE), factor(W_RANGE), factor(BIAS_RANGE)
    sizes = {}
    for name, kind in _kinds(circuit).items():
        p = circuit.param(name)
        f = factor((1 / JITTER, JITTER))
        if kind == "mos.l":
            f *= f_l
        elif kind == "mos.w":
            f *= f_w
        elif kind in ("i", "A"):
            f *= f_i
        sizes[name] = p.value * f
    return circuit.snapped(**sizes)


def draw_transistor_circuits(n: int, seed: int = 1, *, pdk: str = "sky130", per_topology: int = PER_TOPOLOGY,
                             unrealisable: collections.Counter | None = None) -> list[Drawn]:
    """The build's circuits in slot order, deterministic for (n, seed, pdk, per_topology)."""
    from ..circuit import OcbGenerator
    from ..transistor import from_template, templates
    from ..transistor.bench import Conditions
    from ..transistor.realize import RealizationError, realize

    if n < 1 or per_topology < 1:
        raise ValueError("n and per_topology must be at least 1")
    names = templates(pdk)
    gen = OcbGenerator(seed=seed)
    draws = 0
    out: list[Drawn] = []
    slot = 0
    while len(out) < n:
        if slot % TEMPLATE_EVERY == 0 and names:
            name = names[(slot // TEMPLATE_EVERY) % len(names)]
            base = from_template(name, pdk=pdk)
            prov = {"source": "template", "template": name}
        else:
            for _ in range(_MAX_DRAWS_PER_SLOT):
                draws += 1
                beh = gen.draw_values(gen.draw_topology())
                try:
                    z = realize(beh, pdk=pdk, conditions=Conditions(vcm=1.1, cl=LOAD_F))
                    break
                except (RealizationError, ValueError) as exc:
                    if unrealisable is not None:
                        unrealisable[_reason(exc)] += 1
            else:
                raise RuntimeError(f"{_MAX_DRAWS_PER_SLOT} topologies in a row could not be realised on {pdk}")
            base = z.circuit
            prov = {"source": "realised", "generator": GENERATOR_NAME, "seed": seed, "draw": draws,
                    "behavioural": beh.to_dict(), "behavioural_topology": beh.topology_hash(), "s1": z.s1_kind}
        rng = np.random.default_rng([seed, slot])
        # a template's own sizes once (its first slot); every later slot of it draws all its sizings
        own_once = prov["source"] == "realised" or slot < TEMPLATE_EVERY * len(names)
        for k in range(min(per_topology, n - len(out))):
            c = base if k == 0 and own_once else _vary(base, rng)
            out.append(Drawn(c, slot, {**prov, "slot": slot, "sizing": k}))
        slot += 1
    return out


def load_of(circuit, load_range: tuple[float, float] | None) -> float:
    """The load a circuit is measured with: LOAD_F, or with a range a log-uniform draw seeded by the
    circuit's canonical hash (the same circuit gets the same load in every run: resumable)."""
    if load_range is None:
        return LOAD_F
    lo, hi = load_range
    u = np.random.default_rng(int(circuit.canonical_hash()[:12], 16)).uniform()
    return float(lo * (hi / lo) ** u)


def _conditions(circuit, tech, load_range: tuple[float, float] | None = None):
    from ..transistor.bench import Conditions
    vcm = circuit.conditions.get("vcm")
    return Conditions(corner=tech.default_corner, temp_c=27.0, vcm=vcm,
                      cl=load_of(circuit, load_range)).resolved(tech)


def testbench_version(pdk: str) -> str:
    """Names the testbench a stored transistor label was measured with (the template's digest)."""
    from ..resources import templates_dir
    text = (templates_dir() / pdk / "opamp_tb.cir").read_bytes()
    return f"{pdk}-opamp_tb-{hashlib.sha256(text).hexdigest()[:12]}"


def build_transistor_dataset(n: int, seed: int = 1, db_path: str | Path | None = None, *, pdk: str = "sky130",
                             per_topology: int = PER_TOPOLOGY, ray_address: str | None = None,
                             num_workers: int | None = None, timeout_s: float = 120.0, progress: bool = True,
                             pool=None, load_range: tuple[float, float] | None = None) -> TransistorBuildSummary:
    """Draw `n` transistor circuits (module docstring), measure those not stored yet, store them.
    `load_range` (farads, low and high): measure each new circuit at its own load drawn log-uniformly
    in it (`load_of`) instead of LOAD_F, so a predictor learns what the load does."""
    if load_range is not None and not 0 < load_range[0] <= load_range[1]:
        raise ValueError(f"load range {load_range[0]:g}-{load_range[1]:g} F: give 0 < low <= high")
    from ..technology import load_technology
    from ..transistor.jobs import OpampJob

    tech = load_technology(pdk)
    tech.require_installed()
    t0 = time.perf_counter()
    skipped: collections.Counter = collections.Counter()
    drawn = draw_transistor_circuits(n, seed, pdk=pdk, per_topology=per_topology, unrealisable=skipped)
    draw_s = time.perf_counter() - t0
    topo = [d.circuit.topology_hash() for d in drawn]
    # by whole slots (consecutive blocks of per_topology; slots sharing a netlist shape stay
    # together); the templates stay in train: `generate` offers them for every spec
    templates_seen = frozenset(t for t, d in zip(topo, drawn) if d.provenance["source"] == "template")
    splits = plan_split(topo, seed, TEST_FRACTION, block=per_topology, keep_in_train=templates_seen)
    slots = len({d.slot for d in drawn})
    path = Path(db_path) if db_path is not None else default_transistor_db(pdk)
    with Dataset.open(path) as ds:
        s = TransistorBuildSummary(db=str(ds.path), pdk=pdk, n=n, seed=seed, topologies=slots,
                                   unrealisable=dict(skipped), train=splits.count("train"),
                                   test=splits.count("test"), draw_seconds=draw_s)
        hashes = [d.circuit.canonical_hash() for d in drawn]
        stored = ds.hashes()
        ds.set_splits({h: sp for h, sp in zip(hashes, splits) if h in stored})
        pending = [i for i, h in enumerate(hashes) if h not in stored]
        s.already_stored = n - len(pending)
        if pending:
            from ..simulate import open_pool
            jobs = []
            for i in pending:
                dut, name, sizes = drawn[i].circuit.dut()
                jobs.append(OpampJob(dut, name, tuple(sorted(sizes.items())),
                                     _conditions(drawn[i].circuit, tech, load_range),
                                     pdk=pdk))
            own = pool is None
            if own:
                pool = open_pool(ray_address=ray_address, num_workers=num_workers, timeout_s=timeout_s,
                                 progress=progress, chunk_size=per_topology)
            failures: collections.Counter = collections.Counter()
            bench = testbench_version(pdk)
            try:
                pool.start()
                s.simulator, s.workers = pool.simulator, pool.num_workers
                batch, last = [], time.monotonic()
                for k, res in pool.imap_unordered(jobs):
                    i = pending[k]
                    d = drawn[i]
                    ok = getattr(res, "ok", False) and getattr(res, "metrics", None) is not None
                    failure = None if ok else (getattr(res, "failure", None) or "error")
                    if failure:
                        failures[failure] += 1
                    prov = {**d.provenance, "conditions": asdict(_conditions(d.circuit, tech, load_range))}
                    batch.append(Record(d.circuit, performance=res.metrics.performance if ok else None,
                                        failure=failure, message=getattr(res, "message", "") or "",
                                        split=splits[i], provenance=prov, simulator=s.simulator, testbench=bench,
                                        hash=hashes[i], topology_hash=topo[i]))
                    if time.monotonic() - last >= _COMMIT_EVERY_S:
                        s.stored += ds.append(batch)
                        batch, last = [], time.monotonic()
                s.stored += ds.append(batch)
            finally:
                if own:
                    pool.close()
            s.simulated, s.failures = len(pending), dict(failures)
    s.seconds = time.perf_counter() - t0
    return s
