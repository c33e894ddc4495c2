"""The labelled-circuit dataset: the SQLite store, the Bench-101 build, statistics, import/export.

The loader other parts use: `Dataset.open(path).records(split="train", only_ok=True)` gives
`Record`s with `.circuit` (a Circuit), `.performance` (a Performance), `.split`, `.provenance` and
`.hash`; `Dataset.append(records)` adds new ones (the flywheel), keeping their provenance.
`NearestCircuits` indexes measured circuits by performance (the closed loop's memory); `relabel`
measures rows labelled by an older testbench again (a migration that keeps provenance).
"""

from .build import BuildSummary, build_dataset, plan_split
from .exchange import FORMATS, export_dataset, import_dataset
from .migrate import MigrationSummary, relabel, stale_count
from .nearest import NearestCircuits
from .stats import dataset_stats
from .store import SPLITS, Dataset, Record, default_db_path

__all__ = ["Dataset", "Record", "default_db_path", "SPLITS", "build_dataset", "plan_split", "BuildSummary",
           "export_dataset", "import_dataset", "FORMATS", "dataset_stats", "NearestCircuits", "relabel",
           "stale_count", "MigrationSummary"]
