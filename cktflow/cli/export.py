"""`cktflow export`: a circuit as netlists, schematics and drawings."""

from __future__ import annotations

from pathlib import Path

import click

from .common import (InputProblem, circuit_arg, echo_json, force_option, json_option, out_option, output_folder,
                     quiet_stdout)


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(["spice", "spectre", "xschem", "kicad", "svg", "all"]),
              required=True, help="What to write; 'all' writes every format (and --bode) into the folder OUT.")
@out_option("File to write, or the folder for --format all (created if needed).", folder=None, required=True,
            aliases=("--output",))
@click.option("--title", default=None, help="Title written into the files (default: the circuit file's name).")
@click.option("--no-testbench", is_flag=True, help="Netlists only: the circuit's elements without source and sweep.")
@click.option("--bode", is_flag=True, help="With --format all: simulate with ngspice and add the Bode plot (PNG).")
@force_option
@json_option
@click.argument("circuit", type=click.Path(dir_okay=False))
def export_command(fmt, out, title, no_testbench, bode, force, as_json, circuit):
    """Export CIRCUIT (a circuit JSON file) as a SPICE or Spectre netlist, an xschem or KiCad
    schematic, or an SVG drawing; --format all writes them all into the folder OUT as
    NAME.cir, NAME.scs, NAME.sch, NAME.kicad_sch and NAME.svg (NAME: the circuit file's name).

    A transistor circuit JSON (sky130) exports as a self-contained `.subckt` (spice), xschem and
    KiCad schematics with the PDK's device symbols; --format all adds a plain-ngspice testbench
    (NAME_tb.cir with its .spiceinit: run `ngspice -b NAME_tb.cir` in that folder) and the JSON.
    """
    from cktflow.export import ExportError, export

    transistor = _transistor_circuit(circuit)
    if transistor is not None:
        _export_transistor(transistor, fmt, out, bode, no_testbench, force, as_json)
        return
    if bode and fmt != "all":
        raise InputProblem("--bode goes with --format all")
    if no_testbench and fmt not in ("spice", "spectre"):
        raise InputProblem("--no-testbench applies to --format spice or spectre")
    circuit_ir = circuit_arg(circuit, "export")
    if fmt == "all":
        output_folder(out, force)
    try:
        with quiet_stdout(as_json):
            written = export(circuit_ir, fmt, out, stem=Path(circuit).stem, title=title,
                             with_testbench=not no_testbench, bode=bode)
    except ExportError as exc:
        raise InputProblem(str(exc)) from None
    if bode and "bode" not in written:
        click.echo("note: no Bode plot: the simulation failed (see the log)", err=True)
    if as_json:
        echo_json({k: str(v) for k, v in written.items()})
    else:
        for k, v in written.items():
            click.echo(f"{k:8s} {v}")


def _transistor_circuit(path):
    """The TransistorCircuit in `path` when it is a transistor circuit JSON, else None."""
    from cktflow.transistor.circuit import FORMAT, TransistorCircuit, TransistorFormatError
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return None            # circuit_arg reports it
    if FORMAT not in text[:2000]:
        return None
    try:
        return TransistorCircuit.from_json(text, source=str(path))
    except (TransistorFormatError, ValueError) as exc:
        raise InputProblem(str(exc)) from None


def _export_transistor(c, fmt, out, bode, no_testbench, force, as_json):
    from cktflow.export.transistor import export_transistor, transistor_text
    from cktflow.fsutil import atomic_write_text
    if fmt in ("spectre", "svg"):
        raise InputProblem(f"--format {fmt} is not available for transistor circuits "
                           "(spice, xschem, kicad or all)")
    if bode or no_testbench:
        raise InputProblem("--bode and --no-testbench apply to behavioural circuits "
                           "(a transistor circuit's spice export is the bare .subckt; --format all adds its testbench)")
    if fmt == "all":
        output_folder(out, force)
        with quiet_stdout(as_json):
            written = export_transistor(c, out)
    else:
        target = Path(out)
        if target.exists() and not force:
            raise InputProblem(f"{target} exists: give another -o or --force to overwrite it")
        written = {fmt: atomic_write_text(target, transistor_text(c, fmt))}
    if as_json:
        echo_json({k: str(v) for k, v in written.items()})
    else:
        for k, v in written.items():
            click.echo(f"{k:9s} {v}")
