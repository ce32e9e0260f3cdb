"""Launch an ``x2vlm`` training command under torchrun (one node, N processes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from x2vlm_core.errors import X2VLMError


def run_under_torchrun(
    cli_args: list[str], output_dir: str, nproc_per_node: int = 1, overrides: list[str] | None = None
) -> dict[str, Any]:
    """Run ``x2vlm <cli_args> --output output_dir`` on ``nproc_per_node`` ranks; return its training.json."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc_per_node}",
        "-m",
        "x2vlm_core.cli",
        *cli_args,
        "--output",
        output_dir,
    ]
    for item in overrides or []:
        command += ["--set", str(item)]
    done = subprocess.run(command)
    if done.returncode != 0:
        raise X2VLMError(f"training exited with status {done.returncode}; its log is above")
    return json.loads((Path(output_dir) / "training.json").read_text())
