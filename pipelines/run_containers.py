"""`make run-containers`: `make run` with every step inside its own image, through kfp.local's DockerRunner.

Each step runs in the image its component names (components/images.py; `make images-local`
builds them) as uid 10001, with a read-only root filesystem, a writable /tmp, no capabilities,
no network, and only these mounts: the pipeline root (the artifacts, where kfp.local puts them),
the synthetic sources read-only, and the releases folder. A step that writes anywhere else, or
needs root, fails, and so does the run. Start an engine first: scripts/container-engine.sh.
"""

import os
import sys
from pathlib import Path

import kfp.local

from components.images import DIGESTS_ENV, IMAGES
from pipelines import run_local

USER = "10001:10001"  # the images' x2vlm user
# Steps write scratch files to /tmp (KFP's own command puts the component's code there);
# nothing runs from there (the train image's DeepSpeed op is compiled at build time).
TMPFS = {"/tmp": "rw,noexec,nosuid,nodev,size=4g,mode=1777"}
# torchrun's ranks exchange tensors through /dev/shm; Docker's default of 64 MB is too small.
SHM_SIZE = "1g"


def container_settings(run_dir: Path) -> dict:
    """The docker-run settings of every step (kfp.local mounts the pipeline root itself)."""
    from docker.types import Mount

    # The steps own the folders they write; everything they read is world-readable already.
    uid, gid = (int(x) for x in USER.split(":"))
    for folder in ("pipeline_root", "releases"):
        (run_dir / folder).mkdir(exist_ok=True)
        os.chown(run_dir / folder, uid, gid)
    mounts = [
        Mount(str(run_dir / "synthetic"), str(run_dir / "synthetic"), type="bind", read_only=True),
        Mount(str(run_dir / "releases"), str(run_dir / "releases"), type="bind"),
    ]
    if (run_dir / "tokenizer").exists():  # cclm_tiny's trained sentencepiece model
        mounts.append(Mount(str(run_dir / "tokenizer"), str(run_dir / "tokenizer"), type="bind", read_only=True))
    return dict(
        user=USER,
        read_only=True,
        tmpfs=TMPFS,
        shm_size=SHM_SIZE,
        mounts=mounts,
        network_mode="none",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        # Without a network Docker leaves the container's own name out of /etc/hosts, and
        # torchrun's rendezvous must resolve it (on Kubernetes the kubelet lists the pod's name).
        hostname="localhost",
        # KFP's command replaces the image's entrypoint on Kubernetes; docker-py's `command`
        # alone would be appended to it (x2vlm sh -c ...), so clear it as Kubernetes does.
        entrypoint=[],
        environment={"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")},
    )


def main() -> int:
    pinned = sorted(ref for ref in IMAGES.values() if "@" in ref)
    if pinned:
        # Images built here have no registry digest: kfp.local would try to pull these, and fail.
        print(
            f"run-containers: the steps would name pushed images by digest ({', '.join(pinned)}); "
            f"run the local images by tag with {DIGESTS_ENV}= (empty), as make run-containers does",
            file=sys.stderr,
        )
        return 2
    return run_local.main(
        __doc__.splitlines()[0], lambda run_dir: kfp.local.DockerRunner(**container_settings(run_dir))
    )


if __name__ == "__main__":
    sys.exit(main())
