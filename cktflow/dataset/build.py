"""Build the Ckt-Bench-101-style dataset: generate, simulate on the pool, store with a topology split.

The generator is deterministic for a seed, so a build that was interrupted simply regenerates the
same circuits and skips those whose canonical hash is already stored; results are committed in
small transactions as they arrive, so a killed build loses at most a second of simulations.

The split follows the paper (9,000 train / 1,000 test for 10,000 circuits) but is made by whole
topology blocks: the K = 20 rule gives each block of 20 consecutive generator indices one topology,
and blocks whose topologies coincide are kept together, so no test topology is seen in training.
Which blocks go to test depends only on the seed and the topology hashes (deterministic).
"""

from __future__ import annotations

import collections
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from spice_sim import SimJob

from ..circuit import OcbGenerator, testbench, validity_problems
from ..circuit.generator import K_VALUES_PER_TOPOLOGY
from ..simulate import INVALID, testbench_version
from .store import Dataset, Record

__all__ = ["plan_split", "build_dataset", "BuildSummary", "TEST_FRACTION", "GENERATOR_NAME"]

log = logging.getLogger(__name__)

TEST_FRACTION = 0.1
GENERATOR_NAME = "ocb-bench101"
_COMMIT_EVERY_S = 1.0


def plan_split(topology_hashes: list[str], seed: int, test_fraction: float = TEST_FRACTION,
               block: int = K_VALUES_PER_TOPOLOGY, keep_in_train: frozenset[str] = frozenset()) -> list[str]:
    """"train"/"test" per circuit (given by its topology hash, in generator order), by whole blocks
    of `block` consecutive circuits.

    Blocks that share any topology hash form one group and land on the same side. Groups are taken
    into test in an order fixed by sha256(seed, topology) until the test share reaches
    `test_fraction` of the circuits; at least one group goes to test when there are two or more
    candidates. A group holding any hash of `keep_in_train` never goes to test (a PDK's templates:
    every design offers them, so a model must have seen them; the test split measures topologies
    nobody has seen).
    """
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    topo = list(topology_hashes)
    n_blocks = -(-len(topo) // block)
    # union-find over blocks: a topology hash seen in two blocks joins them
    parent = list(range(n_blocks))

    def find(b: int) -> int:
        while parent[b] != b:
            parent[b] = parent[parent[b]]
            b = parent[b]
        return b

    first_block: dict[str, int] = {}
    for i, t in enumerate(topo):
        b = i // block
        if t in first_block:
            parent[find(b)] = find(first_block[t])
        else:
            first_block[t] = b
    groups: dict[int, list[int]] = collections.defaultdict(list)
    for b in range(n_blocks):
        groups[find(b)].append(b)

    def size(g: list[int]) -> int:
        return sum(min(block, len(topo) - b * block) for b in g)

    def key(g: list[int]) -> str:
        names = sorted({topo[i] for b in g for i in range(b * block, min((b + 1) * block, len(topo)))})
        return hashlib.sha256(f"{seed}:{names[0]}".encode()).hexdigest()

    def pinned(g: list[int]) -> bool:
        return any(topo[i] in keep_in_train for b in g for i in range(b * block, min((b + 1) * block, len(topo))))

    candidates = [g for g in groups.values() if not pinned(g)]
    ordered = sorted(candidates, key=key)
    target = round(len(topo) * test_fraction)
    test_blocks: set[int] = set()
    taken = 0
    if len(groups) >= 2 and ordered and test_fraction > 0:
        # never put every group in test
        for g in (ordered[:-1] if len(ordered) == len(groups) else ordered):
            s = size(g)
            if taken + s <= target or taken == 0:
                test_blocks.update(g)
                taken += s
            if taken >= target:
                break
    return ["test" if i // block in test_blocks else "train" for i in range(len(topo))]


@dataclass
class BuildSummary:
    db: str
    n: int
    seed: int
    already_stored: int = 0
    simulated: int = 0
    stored: int = 0                   # rows added by this run
    failures: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    simulator: str = ""
    workers: int = 0                  # simulation workers used (0 when nothing needed simulating)
    train: int = 0
    test: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def build_dataset(n: int, seed: int = 1, db_path: str | Path | None = None, *, ray_address: str | None = None,
                  num_workers: int | None = None, timeout_s: float = 30.0, progress: bool = True,
                  pool=None) -> BuildSummary:
    """Generate `n` circuits with `seed`, simulate the ones not stored yet, store them with their split."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    t0 = time.perf_counter()
    circuits = OcbGenerator(seed=seed).take(n)
    topo = [c.topology_hash() for c in circuits]
    splits = plan_split(topo, seed)
    with Dataset.open(db_path) as ds:
        summary = BuildSummary(db=str(ds.path), n=n, seed=seed, train=splits.count("train"),
                               test=splits.count("test"))
        stored = ds.hashes()
        hashes = [c.canonical_hash() for c in circuits]
        ids = list(zip(hashes, topo))
        # a resumed or grown build keeps earlier rows but re-plans their split for this size
        ds.set_splits({h: s for h, s in zip(hashes, splits) if h in stored})
        pending = [i for i, h in enumerate(hashes) if h not in stored]
        summary.already_stored = n - len(pending)
        if pending:
            summary.stored, summary.simulated, failures, summary.simulator, summary.workers = _simulate_and_store(
                ds, circuits, ids, splits, pending, seed, pool, ray_address, num_workers, timeout_s, progress)
            summary.failures = dict(failures)
    summary.seconds = time.perf_counter() - t0
    return summary


def _simulate_and_store(ds: Dataset, circuits, ids, splits, pending, seed, pool, ray_address, num_workers, timeout_s,
                        progress):
    from ..simulate import open_pool

    bench = testbench_version()
    failures: collections.Counter = collections.Counter()

    def provenance(i: int) -> dict:
        return {"source": "generator", "generator": GENERATOR_NAME, "mode": "discrete", "seed": seed, "index": i}

    invalid, valid = [], []
    for i in pending:
        problems = validity_problems(circuits[i])
        (invalid if problems else valid).append((i, problems))
    own_pool = pool is None
    if own_pool:
        pool = open_pool(ray_address=ray_address, num_workers=num_workers, timeout_s=timeout_s, progress=progress)
    stored = 0
    try:
        pool.start()
        simulator, workers = pool.simulator, pool.num_workers
        batch = [Record(circuits[i], failure=INVALID, message="; ".join(p), split=splits[i], provenance=provenance(i),
                        simulator=simulator, testbench=bench, hash=ids[i][0], topology_hash=ids[i][1])
                 for i, p in invalid]
        if batch:
            failures[INVALID] += len(batch)
        jobs = [SimJob(testbench(circuits[i])) for i, _ in valid]
        last = time.monotonic()
        for k, res in pool.imap_unordered(jobs):
            i = valid[k][0]
            batch.append(Record.from_result(circuits[i], res, provenance(i), simulator=simulator, testbench=bench,
                                            split=splits[i], hash=ids[i][0], topology_hash=ids[i][1]))
            if not res.ok:
                failures[res.failure] += 1
            if time.monotonic() - last >= _COMMIT_EVERY_S:
                stored += ds.append(batch)
                batch, last = [], time.monotonic()
        stored += ds.append(batch)
    finally:
        if own_pool:
            pool.close()
    return stored, len(valid), failures, simulator, workers
