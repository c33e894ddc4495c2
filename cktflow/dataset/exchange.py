"""Export the store to Parquet or JSONL (for pandas, other tools, sharing) and import it back.

Both formats carry every column of the store, so an export imported into an empty file gives the
same records (hash, label, failure, provenance, split). Parquet keeps the metrics as flat numeric
columns (convenient in pandas) and the circuit and provenance as JSON text; JSONL nests them.
"""

from __future__ import annotations

import json
from pathlib import Path

from spice_sim import METRICS, Performance

from ..fsutil import atomic_open, atomic_path
from .store import Dataset, Record, circuit_from_dict, circuit_from_json

__all__ = ["export_dataset", "import_dataset", "FORMATS"]

FORMATS = ("parquet", "jsonl")
_TEXT = ("hash", "topology_hash", "split", "failure", "message", "simulator", "testbench")


def _format_of(path: Path, fmt: str | None) -> str:
    fmt = fmt or {".parquet": "parquet", ".jsonl": "jsonl"}.get(path.suffix.lower())
    if fmt not in FORMATS:
        raise ValueError(f"{path}: format must be one of {FORMATS} (or use a .parquet/.jsonl name), got {fmt!r}")
    return fmt


def export_dataset(ds: Dataset, path: str | Path, fmt: str | None = None, only_ok: bool = False) -> int:
    """Write every record (failures too unless only_ok) to `path`; returns the number written."""
    path = Path(path)
    fmt = _format_of(path, fmt)
    records = ds.records(only_ok=only_ok)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        with atomic_open(path, "w") as f:
            for r in records:
                row = {k: getattr(r, k) for k in _TEXT}
                row["circuit"] = r.circuit.to_dict()
                row["performance"] = r.performance.to_dict() if r.performance else None
                row["provenance"] = r.provenance
                f.write(json.dumps(row, sort_keys=True) + "\n")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq
        rows = []
        for r in records:
            row = {k: getattr(r, k) for k in _TEXT}
            row["circuit"] = r.circuit.to_json()
            row["provenance"] = json.dumps(r.provenance, sort_keys=True)
            for m in METRICS:
                row[m] = r.performance.get(m) if r.performance else None
            rows.append(row)
        schema = pa.schema([(k, pa.string()) for k in _TEXT + ("circuit", "provenance")]
                           + [(m, pa.float64()) for m in METRICS])
        with atomic_path(path) as tmp:
            pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
    return len(records)


def _check_row(row: dict) -> None:
    """Types the store needs: a number or an object in a text column, or provenance that is not an
    object, would otherwise reach SQLite (or later readers) and fail there as a crash."""
    for k in _TEXT:
        if not (isinstance(row[k], str) or (row[k] is None and k in ("split", "failure"))):
            raise ValueError(f"field '{k}' must be text, got {row[k]!r:.60}")
    if not isinstance(row["provenance"], dict):
        raise ValueError(f"field 'provenance' must be an object, got {row['provenance']!r:.60}")


def _records_from(path: Path, fmt: str) -> list[Record]:
    out = []
    if fmt == "jsonl":
        try:        # decoded at once: a bad byte mid-file must be a refusal naming the file, not a crash
            lines = path.read_bytes().decode("utf-8").split("\n")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        for no, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                _check_row(row)
                perf = Performance.from_dict(row["performance"]) if row["performance"] else None
                out.append(Record(circuit=circuit_from_dict(row["circuit"]), performance=perf,
                                  provenance=row["provenance"], **{k: row[k] for k in _TEXT}))
            except (KeyError, ValueError, TypeError, RecursionError) as exc:
                raise ValueError(f"{path}:{no}: not a cktflow dataset row: {exc}") from None
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq
        try:        # a damaged file fails in pyarrow as OSError or ArrowException, not ValueError alone
            table = pq.read_table(path).to_pylist()
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise ValueError(f"{path}: not a readable Parquet file: {exc}") from None
        for no, row in enumerate(table, start=1):
            try:
                perf = None
                if row["failure"] is None:
                    perf = Performance.from_dict({m: row[m] for m in METRICS})
                row = {**row, "provenance": json.loads(row["provenance"])}
                _check_row(row)
                out.append(Record(circuit=circuit_from_json(row["circuit"]), performance=perf,
                                  provenance=row["provenance"], **{k: row[k] for k in _TEXT}))
            except (KeyError, ValueError, TypeError, RecursionError) as exc:
                raise ValueError(f"{path}: row {no}: not a cktflow dataset row: {exc}") from None
    return out


def import_dataset(ds: Dataset, path: str | Path, fmt: str | None = None) -> int:
    """Append the records of an export; returns how many were new. Hashes are checked against the circuits."""
    path = Path(path)
    records = _records_from(path, _format_of(path, fmt))
    for r in records:
        # the topology hash too: the split keeps a topology on one side, a wrong one would leak it
        if r.circuit.canonical_hash() != r.hash or r.circuit.topology_hash() != r.topology_hash:
            raise ValueError(f"{path}: record {r.hash[:12]} does not match its circuit (edited or corrupt file)")
    return ds.append(records)
