"""The output folder of `generate` at transistor level: report.md and report.json ranking the
circuits by worst-case margin with every metric per condition, and per circuit (verified ones, or
the closest miss when none is) a folder with its files:

- NAME.spice (the self-contained subcircuit), NAME_tb.cir + .spiceinit (a plain-ngspice deck that
  reproduces the report's gain, UGF and phase margin at the typical condition), NAME.sch (xschem),
  NAME.kicad_sch, NAME.json (the TransistorCircuit), all by cktflow.export.transistor;
- bode.png (open loop) and step.png (the unity-gain follower's rising step) at the typical condition;
- the operating-point table (each device: W, L, id, gm/Id, vds - vdsat, region) in the report.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..fsutil import atomic_write_text
from ..report import condition_table, table
from ..units import format_si
from .transistor import ConditionResult
from .transistor_design import TransistorDesignResult, TransistorOutcome
from .verify import dumps

__all__ = ["op_rows", "write_transistor_report", "typical_result", "rising_step"]

_OP_HEADER = ["device", "model", "W", "L", "id", "gm/Id", "vds - vdsat", "region"]


def typical_result(outcome: TransistorOutcome) -> ConditionResult | None:
    """The verification's run at the typical condition (the sizing's first condition)."""
    rep = outcome.report
    if rep is None or not rep.results:
        return None
    if outcome.sizing is not None:
        label = outcome.sizing.plan.typical.label
        for r in rep.results:
            if r.conditions.label == label:
                return r
    from ..sizing.transistor import typical_first
    first = typical_first([r.conditions for r in rep.results], "tt")[0]
    return next(r for r in rep.results if r.conditions is first)


def op_rows(result: ConditionResult) -> list[dict]:
    """Each device of the amplifier at the operating point (the open-loop block's copy)."""
    if result is None or result.metrics is None or result.metrics.op is None:
        return []
    rows = []
    for key, d in sorted(result.metrics.op.devices.items()):
        rows.append({"device": key.split(".", 1)[-1], "model": d.model.split("__")[-1], "w_um": d.w * 1e6,
                     "l_um": d.l * 1e6, "id_a": abs(d.id), "gm_id": d.gm_over_id, "vds_minus_vdsat_v": d.margin,
                     "region": d.region})
    return rows


def _op_cells(rows: list[dict]) -> list[list[str]]:
    return [[r["device"], r["model"], f"{r['w_um']:.3g} um", f"{r['l_um']:.3g} um", format_si(r["id_a"], "A"),
             f"{r['gm_id']:.1f} /V", format_si(r["vds_minus_vdsat_v"], "V"), r["region"]] for r in rows]


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"] + ["| " + " | ".join(r) + " |" for r in rows]


def rising_step(step: dict) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The follower's rising edge from its transient waves (`{"time", "vin", "vout", "edge_s"}`, as
    the bench keeps them): (time from the edge, output over the input step, the settled level), or
    None when the input does not step. Time counts from the edge the bench applied, as its settling
    metric does (cktflow.transistor.bench), so the plot's settling time is the report's for that edge."""
    t, vin, vout = (np.asarray(step[k], dtype=float) for k in ("time", "vin", "vout"))
    span = float(vin.max() - vin.min())
    if span <= 0:
        return None
    top = int(np.argmax(vin))
    falls = np.nonzero(vin[top:] < vin.max() - span / 2)[0]
    end = top + int(falls[0]) if falls.size else len(t)
    y = (vout[:end] - vout[0]) / span
    # the follower settles at its closed-loop gain A/(1+A) plus offset, not exactly 1: the band is
    # drawn around the settled level, as the settling metric measures it
    final = float(np.mean(y[-max(3, len(y) // 50):]))
    return t[:end] - float(step["edge_s"]), y, final


def _plots(result: ConditionResult, folder: Path, title: str) -> dict[str, Path]:
    from ..export.bode import plot_bode, plot_step

    out = {}
    m = result.metrics if result is not None else None
    if m is None:
        return out
    if m.ac is not None:
        out["bode"] = plot_bode(m.ac["freq"], m.ac["h"], folder / "bode.png", f"{title} ({result.conditions.label})")
    edge = rising_step(m.step) if m.step is not None else None
    if edge is not None:
        t, y, final = edge
        out["step"] = plot_step(t, y, final, folder / "step.png",
                                f"{title} ({result.conditions.label}, rising edge)")
    return out


def write_transistor_report(result: TransistorDesignResult, out_dir: str | Path, provenance: dict | None = None) -> dict:
    """Write the folder (module docstring); returns the report's JSON document."""
    from ..export.transistor import export_transistor

    out = Path(out_dir)
    folder = out / "circuits"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("[0-9][0-9]-*"):        # an earlier run's ranking in the same folder
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    spec = result.spec
    data = {**result.to_dict(), "provenance": provenance or {}}
    lines = [f"# cktflow generate: {spec.name} ({spec.pdk})", ""]
    if result.verified:
        lines.append(f"**{len(result.verified)} circuit(s) verified by ngspice at every condition** "
                     f"({len(result.verified[0].report.results)} condition(s)).")
    else:
        c = result.closest
        lines.append("**No circuit met the spec at every condition**" + (
            f": the nearest miss ({c.candidate.origin}) misses by a normalised shortfall of {c.shortfall:.3g}."
            if c else "."))
    lines += ["", f"{result.candidates} candidate topologies, {result.screened} screened at typical; "
              f"{result.simulations} simulations (screening and sizing; each condition run of a point is one) "
              f"plus {result.verification_simulations} verification runs (every testbench at every condition), "
              f"{result.seconds:.1f} s.", ""]
    if result.skipped:
        lines += [f"Not candidates ({len(result.skipped)}):", ""]
        lines += [f"- {k.origin}: {k.reason}" for k in result.skipped] + [""]
    ranking = []
    for rank, o in enumerate(result.outcomes, 1):
        perfs = [r.performance for r in o.report.results if r.ok] if o.report is not None else []
        power = max((p.power_w for p in perfs if p.power_w is not None), default=None)
        area = max((p.area_um2 for p in perfs if p.area_um2 is not None), default=None)
        ranking.append([str(rank), "yes" if o.passed else "no", o.candidate.origin,
                        f"{o.margin:.3f}" if o.margin is not None else "-",
                        f"{o.shortfall:.3g}", format_si(power, "W") if power is not None else "-",
                        f"{area:.0f} um2" if area is not None else "-",
                        str(o.sizing.simulations) if o.sizing is not None else "screen only"])
    lines += ["## Ranking (by worst-case margin)", ""]
    lines += _md_table(["#", "verified", "candidate", "worst-case margin", "shortfall", "power (worst)",
                        "area", "simulations"], ranking)
    for rank, (o, d) in enumerate(zip(result.outcomes, data["outcomes"]), 1):
        lines += ["", f"## #{rank} {o.candidate.origin}: " + ("verified" if o.passed else "not verified"), ""]
        if o.report is None:
            lines.append(f"screened at typical only (shortfall {o.screen_shortfall:.3g}); not sized further.")
            continue
        stem = f"{rank:02d}-{'verified' if o.passed else 'closest'}-{o.circuit.name}"
        cdir = folder / stem
        typ = typical_result(o)
        # the circuit carries the conditions it was designed at, so its testbench deck (and a later
        # `cktflow verify` of its JSON) measures it there, not at the template's own load
        circuit = o.circuit
        if typ is not None:
            tc = typ.conditions
            circuit = replace(circuit, conditions={"vdd": tc.vdd, "vcm": tc.vcm, "cl": tc.cl, "temp_c": tc.temp_c})
        written = export_transistor(circuit, cdir)
        written.update(_plots(typ, cdir, f"{spec.name} #{rank} {o.circuit.name}"))
        files = {k: str(Path(v).relative_to(out)) for k, v in written.items()}
        rows = op_rows(typ)
        d["files"], d["op_point"] = files, {"condition": typ.conditions.label if typ else None, "devices": rows}
        if o.sizing is not None:
            s = o.sizing
            lines.append(f"Sized in {s.simulations} simulations ({s.points} points, {s.passed_typical} met every "
                         f"target at typical and were simulated at the other conditions; "
                         f"{s.other_simulations} simulations there).")
        lines += ["", "```text", condition_table(o.report), "```", ""]
        if rows:
            lines += [f"Operating point at {typ.conditions.label}:", ""]
            lines += _md_table(_OP_HEADER, _op_cells(rows))
        lines += ["", "Files: " + ", ".join(f"[{Path(v).name}]({v})" for k, v in files.items()
                                             if k not in ("bode", "step")),
                  f"(run `ngspice -b {o.circuit.name}_tb.cir` in {Path(files['spice']).parent} to reproduce "
                  "gain, UGF and phase margin at the typical condition)"]
        for k in ("bode", "step"):
            if k in files:
                lines += ["", f"![{k}]({files[k]})"]
    atomic_write_text(out / "report.json", dumps(data) + "\n")
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    return data


def op_table_text(result: ConditionResult) -> str:
    """The operating-point table for a terminal."""
    return table(_OP_HEADER, _op_cells(op_rows(result)))
