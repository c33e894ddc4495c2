"""Relabel a dataset whose labels predate the current testbench: a migration, not a rebuild by hand.

A label names the testbench that measured it (`cktflow.simulate.testbench_version`). When the
testbench gains measurements (the stability metrics of "usable in feedback": peaking_db,
pm_min_deg, stable from the exact poles), stored circuits are measured again with ngspice and
their rows updated in place: same circuit, hash, split and provenance, plus a `relabelled` entry in
the provenance that says from which testbench, when and why. Chunks commit one by one, so an
interrupted migration resumes where it stopped and never measures a row twice.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..circuit import Circuit
from .store import Dataset

__all__ = ["MigrationSummary", "stale_count", "relabel"]

log = logging.getLogger(__name__)


@dataclass
class MigrationSummary:
    path: str
    testbench: str          # the testbench the rows carry now
    rows: int               # rows in the dataset
    relabelled: int         # rows measured again by this run
    already: int            # rows that were current before this run
    failed: int             # relabelled rows whose new measurement failed (kept, with the failure kind)
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


#: Rows of behavioural circuits: a transistor circuit's JSON opens with its format and is measured by
#: its PDK's testbench, which this migration does not run.
_BEHAVIOURAL = """substr(circuit, 1, 10) != '{"format":'"""


def stale_count(ds: Dataset) -> int:
    """Rows whose label was measured with another testbench than the current one."""
    from ..simulate import testbench_version
    return ds.query(f"SELECT COUNT(*) FROM circuits WHERE testbench != ? AND {_BEHAVIOURAL}",
                    (testbench_version(),))[0][0]


def relabel(path: str | Path | None = None, pool=None, *, chunk: int = 512, progress: bool = False,
            reason: str = "stability metrics (peaking_db, pm_min_deg, stable)") -> MigrationSummary:
    """Measure every stale row of the dataset at `path` again and update it (module docstring)."""
    from ..simulate import simulate, simulator_version, testbench_version

    t0 = time.perf_counter()
    current = testbench_version()
    with Dataset.open(path) as ds:
        total = len(ds)
        already = total - stale_count(ds)
        done = failed = 0
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=total - already, desc="relabelling", unit="circuit")
        while True:
            rows = ds.query(f"SELECT id, circuit, testbench, provenance FROM circuits WHERE testbench != ? "
                            f"AND {_BEHAVIOURAL} ORDER BY id LIMIT ?", (current, chunk))
            if not rows:
                break
            circuits = [Circuit.from_json(r["circuit"]) for r in rows]
            results = simulate(circuits, pool, progress=False)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            updates = []
            for r, res in zip(rows, results):
                prov = json.loads(r["provenance"])
                prov.setdefault("relabelled", []).append({"from": r["testbench"], "to": current, "at": stamp,
                                                          "reason": reason})
                failure = res.failure if not res.ok or res.performance is None else None
                if res.ok and res.performance is None:
                    failure = "error"
                perf = json.dumps(res.performance.to_dict()) if failure is None else None
                failed += failure is not None
                updates.append((perf, failure, res.message, simulator_version(), current,
                                json.dumps(prov, sort_keys=True), r["id"]))
            ds.update_labels(updates)
            done += len(rows)
            if bar is not None:
                bar.update(len(rows))
        if bar is not None:
            bar.close()
    summary = MigrationSummary(str(ds.path), current, total, done, already, failed, time.perf_counter() - t0)
    log.info("relabelled %d of %d rows (%d already current, %d failed) in %.1f s", done, total, already, failed,
             summary.seconds)
    return summary
