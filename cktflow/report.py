"""Text tables for people: measured vs target."""

from __future__ import annotations

from spice_sim.measure import METRIC_UNITS

from .units import format_si

__all__ = ["table", "verify_table"]


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), "  ".join("-" * w for w in widths)]
    lines += [fmt.format(*map(str, r)) for r in rows]
    return "\n".join(lines)


def verify_table(report) -> str:
    head = f"{report.source}: " + ("PASS" if report.passed else "FAIL")
    if not report.result.ok:
        head += f" (simulation failed: {report.result.failure}: {report.result.message})"
    rows = [[r.metric, format_si(r.measured, METRIC_UNITS[r.metric]), r.target, "pass" if r.passed else "FAIL"]
            for r in report.rows]
    return head + "\n" + table(["metric", "measured", "target", "result"], rows)
