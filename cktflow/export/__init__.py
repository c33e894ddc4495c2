"""Export a `Circuit` for people and their tools: SPICE and Spectre netlists, xschem and KiCad
schematics, SVG drawings and Bode plots.

Every exporter is `write(circuit, dest: IO, ...)` over the same IR, and all schematic formats draw
the same placement (`layout.py`), so a circuit looks the same in xschem, KiCad and the SVG.
`bode` (matplotlib) is imported only when a plot is drawn.
"""

from .bundle import FORMATS, SUFFIX, ExportError, export, export_all, write_format

__all__ = ["FORMATS", "SUFFIX", "ExportError", "export", "export_all", "write_format"]
