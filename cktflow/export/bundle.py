"""Write every export of one circuit into a folder: what `generate` leaves for people.

A designer gets the circuit in each tool's own format side by side (SPICE deck, Spectre netlist,
xschem and KiCad schematics, an SVG drawing) and, when the measured waveform is at hand, its Bode
plot, all named after one stem so they are easy to find together.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..circuit import Circuit
from ..circuit.pdk import Pdk
from ..fsutil import atomic_open
from . import kicad, spectre, spice, svg, xschem

__all__ = ["FORMATS", "SUFFIX", "ExportError", "write_format", "export_all", "export"]

log = logging.getLogger(__name__)

#: Exporter per format name, in the order `export_all` writes them.
FORMATS = {"spice": spice, "spectre": spectre, "xschem": xschem, "kicad": kicad, "svg": svg}
#: File suffix per format.
SUFFIX = {"spice": ".cir", "spectre": ".scs", "xschem": ".sch", "kicad": ".kicad_sch", "svg": ".svg"}


class ExportError(ValueError):
    """The export cannot be written where asked (a folder for one file, a path that cannot be written)."""


def write_format(c: Circuit, fmt: str, path: str | Path, *, title: str | None = None,
                 with_testbench: bool = True, pdk: Pdk | None = None) -> Path:
    """Write one format to `path`. `with_testbench` applies to the netlists (spice, spectre)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (expected one of {', '.join(FORMATS)})")
    path = Path(path)
    title = title or path.stem
    kw = {"with_testbench": with_testbench} if fmt in ("spice", "spectre") else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w", encoding="utf-8") as fh:
        FORMATS[fmt].write(c, fh, title=title, pdk=pdk, **kw)
    log.debug("wrote %s", path)
    return path


def export_all(c: Circuit, folder: str | Path, stem: str, sim_result=None, *, pdk: Pdk | None = None,
               title: str | None = None) -> dict[str, Path]:
    """Write STEM.cir, .scs, .sch, .kicad_sch and .svg into `folder` (created if needed), and
    STEM_bode.png when `sim_result` carries a waveform (a SimResult run with keep_waveform=True),
    STEM_step.png when it carries the follower's step response too.
    Returns {format: path}, "bode" and "step" included when written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    title = title or stem
    written = {fmt: write_format(c, fmt, folder / f"{stem}{SUFFIX[fmt]}", title=title, pdk=pdk) for fmt in FORMATS}
    freq, h = getattr(sim_result, "freq", None), getattr(sim_result, "h", None)
    if freq is not None and h is not None:
        from .bode import plot_bode
        written["bode"] = plot_bode(freq, h, folder / f"{stem}_bode.png", title=title)
    t, y = getattr(sim_result, "time", None), getattr(sim_result, "step", None)
    if t is not None and y is not None and freq is not None:
        from .bode import plot_step
        a0 = abs(complex(h[0]))
        written["step"] = plot_step(t, y, a0 / (1 + a0), folder / f"{stem}_step.png", title=title)
    return written


def export(c: Circuit, fmt: str, out: str | Path, *, stem: str, title: str | None = None,
           with_testbench: bool = True, bode: bool = False, pdk: Pdk | None = None) -> dict[str, Path]:
    """The `cktflow export` command: one format into the file `out`, or "all" into the folder `out`
    (with `bode`, the circuit is simulated first so that its Bode plot can be drawn)."""
    out = Path(out)
    try:
        if fmt != "all":
            if out.is_dir():
                raise ExportError(f"{out} is a folder; give a file name (or use --format all)")
            return {fmt: write_format(c, fmt, out, title=title or stem, with_testbench=with_testbench, pdk=pdk)}
        result = _simulate_waveform(c, pdk) if bode else None
        return export_all(c, out, stem, result, pdk=pdk, title=title)
    except OSError as exc:
        raise ExportError(f"{out}: cannot write: {exc.strerror or exc}") from None


def _simulate_waveform(c: Circuit, pdk: Pdk | None):
    """The circuit's AC response from ngspice (in a child process with a time limit), or None."""
    from spice_sim import LocalSimulator, SimJob

    from ..circuit import follower_testbench, testbench

    with LocalSimulator() as simulator:
        result = simulator.run(SimJob(testbench(c, pdk=pdk), keep_waveform=True,
                                      follower=follower_testbench(c, pdk=pdk)))
    if not result.ok:
        log.warning("no Bode plot: the simulation failed (%s): %s", result.failure, result.message)
        return None
    return result
