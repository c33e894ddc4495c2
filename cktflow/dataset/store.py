"""The labelled-circuit store: one SQLite file, one row per circuit, keyed by its canonical hash.

Why SQLite: a single file that needs no server, transactions that survive a killed build, and WAL
mode so that a model can read the data while a build or the flywheel writes to it. A row keeps
everything needed to trust or redo its label: the circuit JSON, the measured Performance (null
where a metric does not exist), the failure kind if ngspice could not measure it, the simulator and
testbench versions, where the circuit came from (provenance) and its train/test split.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from spice_sim import Performance, SimResult

from ..cache import cache_dir
from ..circuit import Circuit

__all__ = ["Record", "Dataset", "default_db_path", "SPLITS"]

SPLITS = ("train", "test")
_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS circuits (
    id            INTEGER PRIMARY KEY,
    hash          TEXT NOT NULL UNIQUE,     -- Circuit.canonical_hash()
    topology_hash TEXT NOT NULL,            -- Circuit.topology_hash(): the split never separates one
    circuit       TEXT NOT NULL,            -- Circuit.to_json()
    performance   TEXT,                     -- Performance.to_dict() as JSON; NULL when not measured
    failure       TEXT,                     -- NULL when measured, else the failure kind
    message       TEXT NOT NULL DEFAULT '',
    simulator     TEXT NOT NULL,            -- e.g. ngspice-39
    testbench     TEXT NOT NULL,            -- e.g. ocb-ac-dec100-1-1e+11
    provenance    TEXT NOT NULL,            -- JSON: generator+seed+index, model+run, or sizing run
    split         TEXT CHECK (split IN ('train', 'test')),
    added         REAL NOT NULL             -- unix time of insertion
);
CREATE INDEX IF NOT EXISTS circuits_split ON circuits(split);
CREATE INDEX IF NOT EXISTS circuits_topology ON circuits(topology_hash);
"""
_COLUMNS = ("hash", "topology_hash", "circuit", "performance", "failure", "message", "simulator", "testbench",
            "provenance", "split")


def default_db_path() -> Path:
    """<cache dir>/data/bench101.sqlite (the cache dir is $CKTFLOW_CACHE or ~/.cache/cktflow)."""
    return cache_dir() / "data" / "bench101.sqlite"


def circuit_from_json(text: str):
    """A stored circuit: a transistor circuit (its JSON opens with its format) or a behavioural one."""
    if not isinstance(text, str):
        raise TypeError(f"a stored circuit is JSON text, not {type(text).__name__}")
    if text.startswith('{"format": "cktflow.transistor-circuit"'):
        from ..transistor import TransistorCircuit
        return TransistorCircuit.from_json(text)
    return Circuit.from_json(text)


def circuit_from_dict(data: dict):
    """`circuit_from_json` for a parsed circuit (an export's JSONL row)."""
    if isinstance(data, dict) and "format" in data:
        from ..transistor import TransistorCircuit
        return TransistorCircuit.from_dict(data)
    return Circuit.from_dict(data)


@dataclass(frozen=True)
class Record:
    """One stored circuit with its label; `hash` and `topology_hash` are filled in from the circuit.
    `circuit`: a behavioural Circuit or a cktflow.transistor.TransistorCircuit (a PDK's dataset)."""
    circuit: Circuit
    performance: Performance | None = None
    failure: str | None = None
    message: str = ""
    split: str | None = None
    provenance: dict = field(default_factory=dict)
    simulator: str = ""
    testbench: str = ""
    hash: str = ""
    topology_hash: str = ""

    def __post_init__(self):
        if self.split is not None and self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None, got {self.split!r}")
        if (self.performance is None) == (self.failure is None):
            raise ValueError("a record has either a performance or a failure kind, not both or neither")
        if not self.hash:
            object.__setattr__(self, "hash", self.circuit.canonical_hash())
        if not self.topology_hash:
            object.__setattr__(self, "topology_hash", self.circuit.topology_hash())

    @property
    def ok(self) -> bool:
        return self.failure is None

    @classmethod
    def from_result(cls, circuit: Circuit, result: SimResult, provenance: dict, *, simulator: str,
                    testbench: str, split: str | None = None, hash: str = "", topology_hash: str = "") -> "Record":
        """A record for a circuit and what `cktflow.simulate` returned for it (pass the hashes if known)."""
        failure = result.failure
        if result.performance is None and failure is None:
            failure = "error"
        performance = result.performance if failure is None else None
        return cls(circuit=circuit, performance=performance, failure=failure, message=result.message,
                   split=split, provenance=dict(provenance), simulator=simulator, testbench=testbench, hash=hash,
                   topology_hash=topology_hash)

    def to_row(self) -> tuple:
        perf = json.dumps(self.performance.to_dict()) if self.performance is not None else None
        return (self.hash, self.topology_hash, self.circuit.to_json(), perf, self.failure, self.message,
                self.simulator, self.testbench, json.dumps(self.provenance, sort_keys=True), self.split)

    @classmethod
    def from_row(cls, row: sqlite3.Row | dict) -> "Record":
        perf = row["performance"]
        return cls(circuit=circuit_from_json(row["circuit"]),
                   performance=Performance.from_dict(json.loads(perf)) if perf else None,
                   failure=row["failure"], message=row["message"] or "", split=row["split"],
                   provenance=json.loads(row["provenance"]), simulator=row["simulator"],
                   testbench=row["testbench"], hash=row["hash"], topology_hash=row["topology_hash"])


class Dataset:
    """A dataset file. Appends are idempotent (the canonical hash is unique) and transactional.

    >>> with Dataset.open("bench101.sqlite") as ds:          # doctest: +SKIP
    ...     train = ds.records(split="train")
    """

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit mode: every write below opens its own explicit transaction
        self._db = sqlite3.connect(str(self.path), timeout=60, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA busy_timeout = 60000")
        mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise RuntimeError(f"{self.path}: SQLite refused WAL mode (got {mode}); is it on a network drive?")
        self._db.execute("PRAGMA synchronous = NORMAL")   # with WAL: safe against a killed process
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, _SCHEMA_VERSION):
            raise ValueError(f"{self.path}: dataset schema version {version}, this cktflow reads {_SCHEMA_VERSION}")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    @classmethod
    def open(cls, path: str | Path | None = None) -> "Dataset":
        """Open (creating if needed) the dataset at `path`, default `default_db_path()`."""
        return cls(path if path is not None else default_db_path())

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Dataset":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM circuits").fetchone()[0]

    # ---- writing -------------------------------------------------------------------------------
    def append(self, records: Iterable[Record]) -> int:
        """Store the records in one transaction; circuits already stored are skipped. Returns how many were new."""
        rows = [r.to_row() + (time.time(),) for r in records]
        if not rows:
            return 0
        # ON CONFLICT(hash) skips only duplicates; OR IGNORE would also drop rows that break a CHECK
        sql = (f"INSERT INTO circuits ({', '.join(_COLUMNS)}, added) "
               f"VALUES ({', '.join('?' * (len(_COLUMNS) + 1))}) ON CONFLICT(hash) DO NOTHING")
        with self._transaction():
            before = self._db.total_changes
            self._db.executemany(sql, rows)
            return self._db.total_changes - before

    def set_splits(self, splits: dict[str, str | None]) -> None:
        """Set the split of stored circuits by hash (a rebuild with another size re-plans the split)."""
        for s in set(splits.values()):
            if s is not None and s not in SPLITS:
                raise ValueError(f"split must be one of {SPLITS} or None, got {s!r}")
        with self._transaction():
            self._db.executemany("UPDATE circuits SET split = ? WHERE hash = ?",
                                 [(s, h) for h, s in splits.items()])

    def update_labels(self, rows: Iterable[tuple]) -> None:
        """Replace the labels of stored rows in one transaction (the relabelling migration):
        rows of (performance JSON or None, failure or None, message, simulator, testbench,
        provenance JSON, id)."""
        with self._transaction():
            self._db.executemany("UPDATE circuits SET performance = ?, failure = ?, message = ?, simulator = ?, "
                                 "testbench = ?, provenance = ? WHERE id = ?", list(rows))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ---- reading -------------------------------------------------------------------------------
    def records(self, split: str | None = None, only_ok: bool = True) -> list[Record]:
        """Stored records in insertion order; `split` "train"/"test" or None for all."""
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
        where, args = [], []
        if split is not None:
            where.append("split = ?")
            args.append(split)
        if only_ok:
            where.append("failure IS NULL")
        sql = "SELECT * FROM circuits" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        return [Record.from_row(row) for row in self._db.execute(sql, args)]

    def hashes(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT hash FROM circuits")}

    def query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        """Read-only SQL for reports (stats); never pass user text here."""
        return list(self._db.execute(sql, args))
