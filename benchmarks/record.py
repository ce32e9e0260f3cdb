"""Recording a benchmark run in docs/benchmarks.md: what was run, where, and what it printed.

Every benchmark script prints its table, then calls ``append_entry`` with the command line and
that printed text. The entry names the machine (CPU model and cores, memory, GPU) and the
versions of Python and of the packages that shape the numbers, with the date.

    from record import append_entry, command_line
    append_entry("pre-training step throughput", command_line(), printed_text)
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import shlex
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
PACKAGES = ("torch", "deepspeed", "transformers", "timm", "kfp", "apache-beam")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> str:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return f"{pages * page_size / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        return "memory unknown"


def machine() -> str:
    """CPU, cores, memory, GPU (or "no GPU"), and the load average when the run ended."""
    parts = [f"{_cpu_model()}, {os.cpu_count()} cores", _memory_gib()]
    try:
        import torch

        if torch.cuda.is_available():
            parts.append(f"{torch.cuda.device_count()}x {torch.cuda.get_device_name()}")
        else:
            parts.append("no GPU")
    except ImportError:
        pass
    if hasattr(os, "getloadavg"):
        parts.append("load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    return "; ".join(parts)


def versions() -> str:
    found = [f"Python {platform.python_version()}"]
    for name in PACKAGES:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        import torch

        if torch.version.cuda:
            found.append(f"CUDA {torch.version.cuda}")
    except ImportError:
        pass
    return ", ".join(found)


def command_line() -> str:
    """The command as typed, with the interpreter shortened to ``python`` and the thread count
    (``OMP_NUM_THREADS``, when set) in front, since it changes CPU figures."""
    threads = [f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"] if "OMP_NUM_THREADS" in os.environ else []
    return " ".join(threads + [shlex.join(["python", *sys.argv])])


def append_entry(
    title: str, command: str, printed: str, notes: list[str] | tuple[str, ...] = (), path: Path = DOCS
) -> None:
    """Append one dated entry to ``path`` (docs/benchmarks.md unless given)."""
    lines = [
        "",
        f"## {datetime.date.today().isoformat()}: {title}",
        "",
        f"- Machine: {machine()}.",
        f"- Versions: {versions()}.",
        f"- Command: `{command}`",
        *(f"- {note}" for note in notes),
        "- Printed:",
        "",
        "```",
        printed.rstrip("\n"),
        "```",
        "",
    ]
    with open(path, "a", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print(f"recorded in {path}")
