"""The `cktflow` console script: the command line lives in cktflow/cli/ (one module per command group).

Exit codes: 0 done (every target met), 1 a target not met, 2 bad input, 3 an internal error.
"""

from cktflow.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
