"""The usual gm/Id charts of a table as PNG files: gm/Id vs VGS, Id/W vs gm/Id, fT vs gm/Id and
gm/gds vs gm/Id, one curve per length, at one VDS and VSB."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..fsutil import atomic_path
from .gmid import GmIdTable

__all__ = ["write_charts", "CHARTS"]

#: file suffix -> (y quantity, y label, log y); the x axis is gm/Id except for the first
CHARTS = {
    "gm_id_vs_vgs": ("gm_id", "gm/Id (1/V)", False),
    "id_w_vs_gm_id": ("id_w", "Id/W (A/um)", True),
    "ft_vs_gm_id": ("ft", "fT (Hz)", True),
    "gm_gds_vs_gm_id": ("gm_gds", "gm/gds", True),
}


def _lengths_shown(table: GmIdTable, most: int = 6) -> list[float]:
    ls = list(table.grid.lengths)
    if len(ls) <= most:
        return ls
    return [ls[int(round(k))] for k in np.linspace(0, len(ls) - 1, most)]


def write_charts(table: GmIdTable, folder: str | Path, vds: float | None = None, vsb: float = 0.0) -> list[Path]:
    """Write the four charts of `table` into `folder` as <device>_<chart>.png; returns the paths.
    `vds`: the drain voltage of the curves (default: the grid point nearest half its range)."""
    import matplotlib
    matplotlib.use("Agg")               # files only: no display on a server
    import matplotlib.pyplot as plt

    folder = Path(folder)
    v = table.grid.vds_values
    vds = float(v[np.argmin(abs(v - (v[0] + v[-1]) / 2))]) if vds is None else float(vds)
    vgs = table.grid.vgs_values
    curves = {ln: table.curves(ln, vds, vsb) for ln in _lengths_shown(table)}
    paths = []
    for suffix, (q, label, logy) in CHARTS.items():
        fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=100)
        for ln, c in curves.items():
            if suffix == "gm_id_vs_vgs":
                ax.plot(vgs, c["gm_id"], label=f"L = {ln:g} um")
            else:
                # the part above VGS = 0.1 V: below it Id is leakage and gm/Id is noise
                sel = vgs >= 0.1
                ax.plot(c["gm_id"][sel], c[q][sel], label=f"L = {ln:g} um")
        ax.set_xlabel("|VGS| (V)" if suffix == "gm_id_vs_vgs" else "gm/Id (1/V)")
        ax.set_ylabel(label)
        if logy:
            ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(f"{table.pdk} {table.device}, {table.corner} {table.temp_c:g} C, |VDS| = {vds:g} V, "
                     f"VSB = {vsb:g} V", fontsize=9)
        fig.tight_layout()
        path = folder / f"{table.device}_{suffix}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        paths.append(path)
    return paths
