"""Reliability and security, measured (issue 22): fuzzing, the hostile corpus, fault injection on a
real local Ray cluster, a soak, output safety. Prints one table: test, cases, failures, data lost
(measured: results or rows missing or doubled), time; then the failures found and the notes.

    python bench/reliability.py                      # the full scale of docs/reliability.md
    python bench/reliability.py --small              # every row, scaled down (minutes)
    python bench/reliability.py --only fuzz,soak     # some rows; --list names them
    python bench/reliability.py --fuzz-cases 2000 --kills 5 --soak-sims 50000 --jsonl rows.jsonl

The checks live in tests/reliability/ (the test suite runs them small). Every row is printed as it
finishes and, with --jsonl, appended to that file, so a long run that is stopped keeps its rows.
The machine may be shared: times and the soak's throughput are for the load at the time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from reliability import faults, fuzz, hostile, output_safety  # noqa: E402


def sections(a) -> dict:
    """name -> a function returning the Outcomes of that row (or rows)."""
    def with_cluster(fn):
        def run():
            with faults.HeadCluster() as c:
                return fn(c)
        return run
    rows = {f"fuzz-{name}": (lambda f=f: [f(a.fuzz_cases, seed=a.seed)]) for name, f in fuzz.ALL.items()}
    rows.update({
        "hostile": lambda: [hostile.run_corpus("process"), hostile.symlink_escape()],
        "output": lambda: [output_safety.folder_refusals(with_generate=True), output_safety.atomic_kills(a.kills)],
        "auth": with_cluster(lambda c: [faults.auth_messages(c)]),
        "pool": with_cluster(lambda c: [faults.pool_worker_kills(a.pool_sims, a.pool_kills, a.pool_rounds,
                                                                 cluster=c, seed=a.seed)]),
        "head": lambda: [faults.head_kill(a.build_n * 3, seed=a.seed)],
        "build": with_cluster(lambda c: [faults.build_kills(a.kills, a.build_n, cluster=c, seed=a.seed)]),
        "size": lambda: [faults.size_kills(a.kills, seed=a.seed)],
        "train": lambda: [faults.train_kills(a.kills, seed=a.seed)],
        "generate": lambda: [faults.generate_kills(a.generate_kills, seed=a.seed)],
        "soak": lambda: [faults.soak(a.soak_sims, batch=max(1000, a.soak_sims // 20))],
    })
    return rows


def table(outcomes) -> str:
    head = ["test", "cases", "failures", "data lost", "time", "scale"]
    rows = [[o.test, f"{o.cases:,}", str(o.failures), str(o.lost), f"{o.seconds:.0f} s", o.scale] for o in outcomes]
    widths = [max(len(r[k]) for r in [head] + rows) for k in range(len(head))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"   # noqa: E731
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", help="scaled down: every row in minutes, not an hour")
    p.add_argument("--only", help="comma-separated rows (see --list)")
    p.add_argument("--list", action="store_true", help="name the rows and exit")
    p.add_argument("--fuzz-cases", type=int, help="cases per fuzz target (default 10,000; --small 500)")
    p.add_argument("--kills", type=int, help="SIGKILLs per command: build, size, train (default 20; --small 2)")
    p.add_argument("--generate-kills", type=int, help="SIGKILLs of generate (default 20; --small 1)")
    p.add_argument("--build-n", type=int, help="circuits per killed dataset build (default 1,000)")
    p.add_argument("--pool-sims", type=int, help="simulations per worker-kill batch (default 20,000)")
    p.add_argument("--pool-kills", type=int, default=10, help="worker kills per batch")
    p.add_argument("--pool-rounds", type=int, default=1, help="batches with worker kills")
    p.add_argument("--soak-sims", type=int, help="soak simulations (default 200,000; --small 10,000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jsonl", help="append each row to this JSON-lines file as it finishes")
    a = p.parse_args()
    small = a.small
    a.fuzz_cases = a.fuzz_cases or (500 if small else 10_000)
    a.kills = a.kills if a.kills is not None else (2 if small else 20)
    a.generate_kills = a.generate_kills if a.generate_kills is not None else (1 if small else 20)
    a.build_n = a.build_n or (400 if small else 1000)
    a.pool_sims = a.pool_sims or (3000 if small else 20_000)
    a.soak_sims = a.soak_sims or (10_000 if small else 200_000)
    rows = sections(a)
    if a.list:
        print("\n".join(rows))
        return 0
    chosen = a.only.split(",") if a.only else list(rows)
    unknown = [c for c in chosen if c not in rows]
    if unknown:
        p.error(f"unknown rows {unknown}; known: {', '.join(rows)}")
    outcomes = []
    t0 = time.perf_counter()
    for name in chosen:
        print(f"[{time.perf_counter() - t0:6.0f} s] {name} ...", file=sys.stderr, flush=True)
        for o in rows[name]():
            outcomes.append(o)
            print(o.summary(), file=sys.stderr, flush=True)
            if a.jsonl:
                with open(a.jsonl, "a") as fh:
                    fh.write(json.dumps({"row": name, "test": o.test, "cases": o.cases, "failures": o.failures,
                                         "lost": o.lost, "seconds": round(o.seconds, 1), "scale": o.scale,
                                         "examples": o.examples, "notes": o.notes}) + "\n")
    print(table(outcomes))
    for o in outcomes:
        for e in o.examples:
            print(f"\nFAILURE {o.test}: {e}")
    print()
    for o in outcomes:
        for n in o.notes:
            print(f"- {o.test}: {n}")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0 if all(o.failures == 0 and o.lost == 0 for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
