"""The cktflow command line, one module per command group (parse, call the library, print).

common.py holds the grammar every command shares; main.py assembles the `cktflow` group. The
console script (pyproject.toml) enters through the top-level cli.py. Nothing in the library imports
this package. torch and ray are imported only inside the commands that need them, so
`cktflow --help` stays fast.
"""

from .main import main

__all__ = ["main"]
