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


def sizing_table(spec, start, result) -> str:
    """A sizing run for people: outcome, measured vs target, and the device values it changed."""
    from .circuit.ir import _eng
    perf = result.best.performance
    if result.met:
        head = f"spec '{spec.name}' met after {result.evals_to_met} simulation(s)"
    else:
        head = (f"spec '{spec.name}' NOT met within {result.evaluations} simulations; "
                f"the closest point misses by a normalised shortfall of {result.best.shortfall:.3g}")
    head += f" ({result.evaluations} run, {result.seconds:.1f} s, optimiser {result.optimizer_seconds:.1f} s)"
    rows = []
    for r in (spec.check(perf) if perf is not None else []):
        rows.append([r.metric, format_si(r.measured, METRIC_UNITS[r.metric]), r.target, "pass" if r.passed else "FAIL"])
    out = [head, table(["metric", "measured", "target", "result"], rows)]
    changes = [[f"node {i} {k}", _eng(v0), _eng(v1)]
               for (i, k, v0), (_, _, v1) in zip(start.device_values(), result.circuit.device_values()) if v0 != v1]
    if changes:
        out += ["", table(["device", "start", "sized"], changes)]
    if result.failures:
        out.append("failed simulations: " + ", ".join(f"{k} x{n}" for k, n in result.failures.items()))
    return "\n".join(out)
