"""cktflow command line: parse arguments, call the library, print. No logic of its own.

Exit codes: 0 success (every target met), 1 a target failed, 2 bad input.
torch and ray are imported only inside the commands that need them, so `cktflow --help` is fast.
"""

from __future__ import annotations

import sys

import click


class InputProblem(click.ClickException):
    """Bad input: exit code 2 and a message that names the file, line and field."""
    exit_code = 2


def _spec(path):
    from cktflow.spec import SpecError, load_spec
    try:
        return load_spec(path)
    except SpecError as exc:
        raise InputProblem(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cktflow")
def main():
    """cktflow: analog op-amp circuits from a specification, with ngspice in the loop."""


@main.command()
@click.option("--spec", "spec_path", required=True, type=click.Path(dir_okay=False),
              help="Spec YAML with the targets (see examples/spec.yaml).")
@click.option("--sim", type=click.Choice(["ngspice"]), default="ngspice", show_default=True,
              help="Simulator that measures the circuit.")
@click.option("--input", "input_net", default="in", show_default=True, help="Input node of a netlist.")
@click.option("--output", "output_net", default="out", show_default=True, help="Output node of a netlist.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Time limit per simulation, seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of a table.")
@click.argument("circuits", nargs=-1, required=True, type=click.Path(dir_okay=False))
def verify(spec_path, sim, input_net, output_net, timeout, as_json, circuits):
    """Measure CIRCUITS (circuit JSON, SPICE or Spectre .scs netlists) with ngspice and check them against a spec.

    A netlist names its input node `in` and its output node `out` (or see --input/--output); when no
    source drives the input, verify adds the testbench's AC source. Netlists are checked before they
    run: .control blocks, shell commands and includes outside the PDK folder are refused.
    """
    from cktflow.flow import InputError, dumps, load_design, verify_design
    from cktflow.report import verify_table
    from spice_sim import LocalSimulator

    spec = _spec(spec_path)
    try:
        designs = [load_design(p, input_net, output_net) for p in circuits]
    except InputError as exc:
        raise InputProblem(str(exc)) from None
    with LocalSimulator(timeout_s=timeout) as simulator:
        reports = [verify_design(d, spec, simulator) for d in designs]
    if as_json:
        click.echo(dumps({"spec": spec.to_dict(), "passed": all(r.passed for r in reports),
                          "results": [r.to_dict() for r in reports]}))
    else:
        for d, r in zip(designs, reports):
            for note in d.notes:
                click.echo(f"note: {note}", err=True)
            click.echo(verify_table(r))
            click.echo()
        n_pass = sum(r.passed for r in reports)
        click.echo(f"{n_pass} of {len(reports)} circuit(s) meet spec '{spec.name}'")
    sys.exit(0 if all(r.passed for r in reports) else 1)


# ---- export (issue 6) -----------------------------------------------------------------------------

@main.command("export")
@click.option("--format", "fmt", type=click.Choice(["spice", "spectre", "xschem", "kicad", "svg", "all"]),
              required=True, help="What to write; 'all' writes every format (and --bode) into the folder OUT.")
@click.option("-o", "--output", "out", required=True, type=click.Path(),
              help="File to write, or the folder for --format all (created if needed).")
@click.option("--title", default=None, help="Title written into the files (default: the circuit file's name).")
@click.option("--no-testbench", is_flag=True, help="Netlists only: the circuit's elements without source and sweep.")
@click.option("--bode", is_flag=True, help="With --format all: simulate with ngspice and add the Bode plot (PNG).")
@click.option("--json", "as_json", is_flag=True, help="Print the written paths as JSON.")
@click.argument("circuit", type=click.Path(dir_okay=False))
def export_command(fmt, out, title, no_testbench, bode, as_json, circuit):
    """Export CIRCUIT (a circuit JSON file) as a SPICE or Spectre netlist, an xschem or KiCad
    schematic, or an SVG drawing; --format all writes them all into the folder OUT as
    NAME.cir, NAME.scs, NAME.sch, NAME.kicad_sch and NAME.svg (NAME: the circuit file's name).
    """
    import json
    from pathlib import Path

    from cktflow.export import ExportError, export
    from cktflow.flow import InputError, load_design

    if bode and fmt != "all":
        raise InputProblem("--bode goes with --format all")
    if no_testbench and fmt not in ("spice", "spectre"):
        raise InputProblem("--no-testbench applies to --format spice or spectre")
    try:
        design = load_design(circuit)
    except InputError as exc:
        raise InputProblem(str(exc)) from None
    if design.circuit is None:
        raise InputProblem(f"{circuit}: export needs a circuit JSON file, not a netlist")
    try:
        written = export(design.circuit, fmt, out, stem=Path(circuit).stem, title=title,
                         with_testbench=not no_testbench, bode=bode)
    except ExportError as exc:
        raise InputProblem(str(exc)) from None
    if bode and "bode" not in written:
        click.echo("note: no Bode plot: the simulation failed (see the log)", err=True)
    if as_json:
        click.echo(json.dumps({k: str(v) for k, v in written.items()}, indent=2))
    else:
        for k, v in written.items():
            click.echo(f"{k:8s} {v}")


if __name__ == "__main__":
    main()
