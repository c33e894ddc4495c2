"""What is in a dataset: counts per split, validity, failure reasons, label quantiles, split leakage."""

from __future__ import annotations

import json

import numpy as np

from .store import Dataset

__all__ = ["dataset_stats", "QUANTILES", "LABELS"]

QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
#: The labels the model learns (metrics.md); bw_hz and gm_db are stored too.
LABELS = ("gain_db", "ugf_hz", "pm_deg", "ocb_pm_deg", "pm_min_deg", "peaking_db")


def dataset_stats(ds: Dataset) -> dict:
    """A JSON-ready summary; `topology_overlap` counts topologies found in both train and test (must be 0)."""
    q = ds.query
    total = q("SELECT COUNT(*) FROM circuits")[0][0]
    by_split = {row[0] or "none": row[1] for row in q("SELECT split, COUNT(*) FROM circuits GROUP BY split")}
    failures = {row[0]: row[1] for row in q(
        "SELECT failure, COUNT(*) FROM circuits WHERE failure IS NOT NULL GROUP BY failure ORDER BY 2 DESC")}
    measured = total - sum(failures.values())
    overlap = q("SELECT COUNT(DISTINCT a.topology_hash) FROM circuits a JOIN circuits b "
                "ON a.topology_hash = b.topology_hash WHERE a.split = 'train' AND b.split = 'test'")[0][0]
    topologies = q("SELECT COUNT(DISTINCT topology_hash) FROM circuits")[0][0]
    sources = {row[0]: row[1] for row in q(
        "SELECT json_extract(provenance, '$.source'), COUNT(*) FROM circuits GROUP BY 1")}
    versions = [dict(simulator=r[0], testbench=r[1], rows=r[2]) for r in q(
        "SELECT simulator, testbench, COUNT(*) FROM circuits GROUP BY 1, 2")]
    from spice_sim import Performance
    from spice_sim.metrics import METRIC_UNITS

    from ..spec import Spec
    implicit = Spec((), name="usable in feedback")
    usable = {"with_ugf": 0, "stable": 0, "usable": 0, "unknown": 0}
    rows = [json.loads(perf) for (perf,) in q("SELECT performance FROM circuits WHERE failure IS NULL")]
    # the model's labels, then every other number a row holds (a transistor set's power, slew, noise, ...)
    seen = {k for d in rows for k, v in d.items() if v is not None}
    names = list(LABELS) + [m for m in METRIC_UNITS if m in seen and m not in LABELS and METRIC_UNITS[m] != "bool"]
    values: dict[str, list[float]] = {m: [] for m in names}
    missing = {m: 0 for m in names}
    saturated = [bool(d["all_saturated"]) for d in rows if d.get("all_saturated") is not None]
    for d in rows:
        if d.get("ugf_hz") is not None:
            usable["with_ugf"] += 1
            if d.get("stable") is None:
                usable["unknown"] += 1       # labelled before the stability metrics (dataset migrate)
            usable["stable"] += bool(d.get("stable"))
            usable["usable"] += implicit.passes(Performance.from_dict(d))
        for m in names:
            if d.get(m) is None:
                missing[m] += 1
            else:
                values[m].append(d[m])
    labels = {}
    for m in names:
        arr = np.asarray(values[m], dtype=float)
        labels[m] = {"n": int(arr.size), "missing": missing[m],
                     "quantiles": {f"{p:g}": (float(np.quantile(arr, p)) if arr.size else None) for p in QUANTILES}}
    return {"db": str(ds.path), "rows": total, "measured": measured, "invalid": failures.get("invalid_circuit", 0),
            "failures": failures, "splits": by_split, "topologies": topologies, "topology_overlap": overlap,
            "sources": sources, "versions": versions, "labels": labels, "usable_in_feedback": usable,
            "all_saturated": {"n": len(saturated), "true": sum(saturated)} if saturated else None}
