"""Wall time of `make run`'s pipeline (pipelines/run_local.py), with each task's time.

    python benchmarks/local_pipeline.py                       # exactly what `make run` runs
    python benchmarks/local_pipeline.py -- --tasks retrieval   # arguments after -- go to run_local

Runs ``python -m pipelines.run_local`` as its own process (output streamed through), times it
from start to exit, reads each task's start and end from kfp.local's log lines, and appends
the result to docs/benchmarks.md. The goal is at most 5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
import time
from pathlib import Path

from record import append_entry, command_line

REPO = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 300
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TASK = re.compile(
    r"^(\d\d:\d\d:\d\d\.\d+) - \w+ - "
    r"(?:Executing task '([^']+)'|Task '([^']+)' finished with status (\w+))"
)


def task_times(log: str) -> list[tuple[str, float, str]]:
    """(task, seconds, status) per task, in the order they finished; same-named tasks pair in order."""
    started: dict[str, list[datetime.datetime]] = {}
    done = []
    for line in _ANSI.sub("", log).splitlines():
        match = _TASK.match(line)
        if not match:
            continue
        at = datetime.datetime.strptime(match.group(1), "%H:%M:%S.%f")
        if match.group(2):
            started.setdefault(match.group(2), []).append(at)
        elif started.get(match.group(3)):
            seconds = (at - started[match.group(3)].pop(0)).total_seconds() % 86400  # across midnight
            done.append((match.group(3), seconds, match.group(4)))
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to docs/benchmarks.md")
    parser.add_argument("run_local_args", nargs="*", help="arguments for pipelines/run_local.py (after --)")
    args = parser.parse_args()

    command = [sys.executable, "-m", "pipelines.run_local", *args.run_local_args]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = []
    for line in process.stdout:
        sys.stdout.write(line)
        log.append(line)
    code = process.wait()
    wall = time.perf_counter() - started
    if code != 0:
        print(f"pipelines.run_local failed with exit code {code} after {wall:.1f} s; nothing recorded", file=sys.stderr)
        return code

    run = " ".join(["python -m pipelines.run_local", *args.run_local_args])
    lines = [
        "| command | wall s | goal | within goal |",
        "| --- | --- | --- | --- |",
        f"| {run} | {wall:.1f} | <= {GOAL_SECONDS} s | {'yes' if wall <= GOAL_SECONDS else 'no'} |",
        "",
        "| task | seconds | status |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {task} | {seconds:.1f} | {status} |" for task, seconds, status in task_times("".join(log))]
    print("\n".join(lines))
    if not args.no_record:
        append_entry(
            "local pipeline wall time (`make run`)",
            command_line(),
            "\n".join(lines),
            notes=["Tasks of the ParallelFor branches run side by side, so task times overlap."],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
