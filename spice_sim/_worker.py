"""Child process of LocalSimulator: read SimJobs on stdin, write SimResults on stdout."""

import os
import sys

from .local import enter_private_workdir, read_message, write_message


def main() -> None:
    # Keep the protocol stream private: anything ngspice or a library prints goes to stderr.
    proto_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    proto_in = sys.stdin.buffer
    enter_private_workdir()
    try:
        from .engine import get_engine
        from .session_jobs import execute
        engine = get_engine()
    except Exception as exc:  # report start-up failure to the parent instead of dying silently
        write_message(proto_out, RuntimeError(f"cannot start ngspice: {exc}"))
        return
    write_message(proto_out, "ready")
    while True:
        try:
            job = read_message(proto_in)
        except EOFError:
            return
        write_message(proto_out, execute(engine, job))


if __name__ == "__main__":
    main()
