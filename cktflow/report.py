"""Text tables for people: measured vs target."""

from __future__ import annotations

from spice_sim.measure import METRIC_UNITS

from .units import format_si

__all__ = ["table", "verify_table", "condition_table", "sizing_table", "design_report_markdown", "transistor_sizing_text"]

_CHECK_HEADER = ["metric", "measured", "target", "result"]


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), "  ".join("-" * w for w in widths)]
    lines += [fmt.format(*map(str, r)) for r in rows]
    return "\n".join(lines)


def _check_cells(rows) -> list[list[str]]:
    """Spec check rows as table cells, one format for the verify, sizing and generate reports. An
    implicit target ("usable in feedback", cktflow.spec) is marked with a star."""
    return [[r.metric + (" *" if getattr(r, "implicit", False) else ""), format_si(r.measured, METRIC_UNITS[r.metric]),
             r.target, "pass" if r.passed else "FAIL"] for r in rows]


def implicit_note(spec) -> str:
    """One line on what "verified" was checked against: the implicit targets, or the user's only."""
    if not spec.implicit:
        return "Verified against the user's targets only (implicit: false): stability, pm_min and peaking unchecked."
    if not spec.implicit_bounds:
        return "The spec sets its own stability, pm_min and peaking targets."
    return ("* implicit target (usable in feedback): " + ", ".join(f"{b.metric} {b.describe()}" for b in spec.implicit_bounds)
            + "; set `implicit: false` in the spec to check the user's targets only.")


def follower_line(perf) -> str:
    """The unity-gain follower's small-step response in one line (measured, whatever the targets)."""
    if perf.stable is False and perf.overshoot_pct is None:
        return "unity-gain follower: unstable (the step response runs away)"
    return (f"unity-gain follower, small step: overshoot {format_si(perf.overshoot_pct, '%')}, "
            f"1 % settling {format_si(perf.settling_s, 's')}")


def verify_table(report) -> str:
    head = f"{report.source}: " + ("PASS" if report.passed else "FAIL")
    if not report.result.ok:
        head += f" (simulation failed: {report.result.failure}: {report.result.message})"
    out = head + "\n" + table(_CHECK_HEADER, _check_cells(report.rows))
    perf = report.result.performance
    if perf is not None and (perf.overshoot_pct is not None or perf.settling_s is not None or perf.stable is not None):
        out += "\n" + follower_line(perf)
    for note in getattr(report.result, "notes", []):
        out += f"\nnote: {note}"
    if getattr(report, "spec", None) is not None:
        out += "\n" + implicit_note(report.spec)
    return out


def condition_table(report) -> str:
    """A transistor-level verification: every metric per condition, its worst case, the target.
    The spec's targets first (implicit ones starred), then everything else that was measured."""
    head = f"{report.source}: " + ("PASS" if report.passed else "FAIL") + f" ({report.spec.pdk})"
    conds = [r.conditions.label for r in report.results]
    implicit = {b.metric for b in report.spec.implicit_bounds}
    targets = {b.metric: b for b in report.spec.bounds}
    passed = {r.metric: r.passed for r in report.rows}
    measured = [m for m in METRIC_UNITS if any(r.performance is not None and r.performance.get(m) is not None
                                               for r in report.results)]
    order = list(targets) + [m for m in measured if m not in targets]
    rows = []
    for m in order:
        unit = METRIC_UNITS[m]
        cells = [format_si(r.performance.get(m) if r.performance else None, unit) for r in report.results]
        b = targets.get(m)
        rows.append([m + (" *" if m in implicit else ""), *cells,
                     format_si(report.worst.get(m), unit) if b else "",
                     b.describe() if b else "", ("pass" if passed[m] else "FAIL") if b else ""])
    out = [head, table(["metric", *conds, "worst", "target", "result"], rows)]
    c = report.results[0].conditions if report.results else None
    if c is not None:
        out.append(f"conditions: vdd {format_si(c.vdd, 'V')}, vcm {format_si(c.vcm, 'V')}, "
                   f"load {format_si(c.cl, 'F')}, step {format_si(c.vstep, 'V')}, "
                   f"spot noise at {format_si(c.spot_hz, 'Hz')}")
    for r in report.results:
        if not r.ok:
            out.append(f"{r.conditions.label}: simulation failed: {r.failure}: {r.message}")
        elif r.metrics.worst_device and r.performance.min_margin_v is not None and r.performance.min_margin_v < 0:
            out.append(f"{r.conditions.label}: {r.metrics.worst_device} out of saturation "
                       f"(vds - vdsat = {format_si(r.performance.min_margin_v, 'V')})")
    out.append(implicit_note(report.spec))
    return "\n".join(out)


def sizing_table(spec, start, result) -> str:
    """A sizing run for people: outcome, measured vs target, and the device values it changed."""
    perf = result.best.performance
    if result.met:
        head = f"spec '{spec.name}' met after {result.evals_to_met} simulation(s)"
    else:
        head = (f"spec '{spec.name}' NOT met within {result.evaluations} simulations; "
                f"the closest point misses by a normalised shortfall of {result.best.shortfall:.3g}")
    head += f" ({result.evaluations} run, {result.seconds:.1f} s, optimiser {result.optimizer_seconds:.1f} s)"
    rows = _check_cells(spec.check(perf)) if perf is not None else []
    out = [head, table(_CHECK_HEADER, rows), implicit_note(spec)]
    changes = [[f"node {i} {k}", format_si(v0, sep=""), format_si(v1, sep="")]
               for (i, k, v0), (_, _, v1) in zip(start.device_values(), result.circuit.device_values()) if v0 != v1]
    if changes:
        out += ["", table(["device", "start", "sized"], changes)]
    if result.failures:
        out.append("failed simulations: " + ", ".join(f"{k} x{n}" for k, n in result.failures.items()))
    return "\n".join(out)


def design_report_markdown(result, files: list[dict], provenance: dict) -> str:
    """report.md of `cktflow generate`: the ranking, then each circuit's measured vs target."""
    spec = result.spec
    lines = [f"# cktflow generate: {spec.name}", ""]
    if result.verified:
        lines.append(f"**{len(result.verified)} circuit(s) verified by ngspice** against every target.")
    else:
        c = result.closest
        miss = "no circuit could be simulated" if c is None else f"the closest misses by a normalised shortfall of {c.shortfall:.3g}"
        lines.append(f"**No circuit met the spec**: {miss}.")
    second = f", {result.second_batch} of them from later proposals" if result.second_batch else ""
    lines += ["", f"{result.candidates} distinct candidate(s){second} ({result.duplicates} duplicate(s) dropped, "
              f"{result.invalid} invalid), {result.simulations} ngspice simulations plus "
              f"{result.verification_runs} verification run(s), {result.seconds:.1f} s."]
    if provenance:
        lines += ["", "Provenance: " + ", ".join(f"{k} `{v}`" for k, v in provenance.items())]
    lines += ["", "## Targets", "", "| metric | target | from |", "|---|---|---|"]
    lines += [f"| {b.metric} | {b.describe()} | the spec |" for b in spec.targets]
    lines += [f"| {b.metric} | {b.describe()} | implicit: usable in feedback |" for b in spec.implicit_bounds]
    lines += ["", implicit_note(spec).replace("* implicit", "Implicit")]
    bounds = spec.bounds
    lines += ["", "## Ranking", "", "| # | verified | " + " | ".join(b.metric for b in bounds)
              + " | min margin | sized | files |", "|---" * (len(bounds) + 5) + "|"]
    for rank, (o, f) in enumerate(zip(result.outcomes, files), 1):
        perf = o.performance
        vals = [format_si(perf.get(b.metric) if perf else None, METRIC_UNITS[b.metric]) for b in bounds]
        margin = f"{spec.min_margin(perf):.3f}" if perf is not None else "-"
        sized = f"{o.sizing.evaluations} sims" if o.sizing else "no"
        lines.append(f"| {rank} | {'yes' if o.passed else 'NO'} | " + " | ".join(vals)
                     + f" | {margin} | {sized} | [{f['json']}]({f['json']}) |")
    for rank, (o, f) in enumerate(zip(result.outcomes, files), 1):
        lines += ["", f"## #{rank} {'verified' if o.passed else 'not verified (closest)'}", "",
                  f"`{o.circuit}` (from: {o.origin})", ""]
        perf = o.performance
        if perf is not None:
            lines += ["| " + " | ".join(_CHECK_HEADER) + " |", "|---" * len(_CHECK_HEADER) + "|"]
            lines += ["| " + " | ".join(cells) + " |" for cells in _check_cells(spec.check(perf))]
        elif o.verification is not None:
            lines.append(f"simulation failed: {o.verification.failure}: {o.verification.message}")
        if o.verification is not None and o.verification.ok:
            v = o.verification.performance
            lines += ["", follower_line(v) + f"; stable: {format_si(v.stable, 'bool')}."]
            lines += [f"Note: {n}" for n in o.verification.notes]
        netlist = f.get("spice")
        if netlist:
            lines += ["", f"Netlist: [{netlist}]({netlist})"]
        if "bode" in f:
            lines += ["", f"![Bode plot]({f['bode']})"]
        if "step" in f:
            lines += ["", f"![Step response]({f['step']})"]
    return "\n".join(lines) + "\n"


def transistor_sizing_text(spec, start, result) -> str:
    """A transistor-level sizing run for people: outcome and counts, each target per condition
    measured on the best point (typical first), and the sizes it changed."""
    work = result.spec
    if result.met:
        head = (f"spec '{spec.name}' met at every condition after {result.sims_to_met} simulation(s)"
                if result.sims_to_met is not None else f"spec '{spec.name}' met at every condition")
    else:
        head = (f"spec '{spec.name}' NOT met within {result.simulations} simulations; the closest point misses "
                f"by a normalised shortfall of {result.best.shortfall:.3g}")
    head += (f" ({result.points} points, {result.simulations} simulations: {result.typical_simulations} at "
             f"{result.plan.typical.label}, {result.other_simulations} at the other conditions for the "
             f"{result.passed_typical} point(s) that met every target there; {result.new_simulations} new in this "
             f"run; {result.seconds:.1f} s)")
    runs = result.runs
    implicit = {b.metric for b in work.implicit_bounds}
    worst = result.best.performance
    rows = []
    for b in work.bounds:
        unit = METRIC_UNITS[b.metric]
        cells = [format_si(r.performance.get(b.metric) if r.performance else None, unit) for r in runs]
        cells += ["-"] * (len(result.plan.conditions) - len(runs))
        measured = worst.get(b.metric) if worst is not None else None
        rows.append([b.metric + (" *" if b.metric in implicit else "") + (" +" if b not in spec.bounds else ""),
                     *cells, format_si(measured, unit), b.describe(), "pass" if b.passes(measured) else "FAIL"])
    out = [head, table(["metric", *[c.label for c in result.plan.conditions], "worst", "target", "result"], rows)]
    if len(runs) < len(result.plan.conditions):
        out.append("-: not simulated there (the point missed a target at the typical condition)")
    out.append(implicit_note(spec))
    if any(b not in spec.bounds for b in work.bounds):
        out.append("+ sizing's own guide (every device at least at saturation's edge); the final word on "
                   "stability is `cktflow verify`, which runs the follower's transient at every condition")
    def value(v, unit):          # W and L in um as the PDK writes them, others with an SI prefix
        return f"{v:.6g} {unit}".strip() if unit in ("um", "") else format_si(v, unit)
    changes = [[p.name, value(p.value, p.unit), value(result.circuit.param(p.name).value, p.unit)]
               for p in start.params if p.value != result.circuit.param(p.name).value]
    if changes:
        out += ["", table(["parameter", "start", "sized"], changes)]
    if result.failures:
        out.append("failed simulations: " + ", ".join(f"{k} x{n}" for k, n in result.failures.items()))
    return "\n".join(out)
