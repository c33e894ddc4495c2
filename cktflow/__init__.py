"""cktflow: analog circuits from a specification, with SPICE in the loop."""

__version__ = "0.1.0"
