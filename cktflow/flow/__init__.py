"""The pipelines that tie the parts together: `verify` (verify.py), the generate loop (loop.py:
propose, simulate, size, verify, write the report) and the flywheel (flywheel.py)."""

from .flywheel import append_verified, flywheel, load_spec_list
from .loop import LoopResult, Outcome, design_loop, generate, run_provenance, write_design_report
from .verify import Design, InputError, VerifyReport, dumps, load_design, verify_design

__all__ = ["InputError", "Design", "load_design", "VerifyReport", "verify_design", "dumps", "Outcome", "LoopResult",
           "design_loop", "generate", "write_design_report", "run_provenance", "append_verified", "load_spec_list",
           "flywheel"]
