"""Export a `Circuit` for people and their tools: SPICE and Spectre netlists, xschem and KiCad
schematics, SVG drawings and Bode plots.

Every exporter is `write(circuit, dest: IO, ...)` over the same IR, and all schematic formats draw
the same placement (`layout.py`), so a circuit looks the same in xschem, KiCad and the SVG.
Submodules are imported on use: matplotlib (bode) must not load with `import cktflow`.
"""
