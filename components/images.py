"""The container images the components run in; the tag is set here and nowhere else.

`make images` builds them (images/<name>/Dockerfile) under their tagged names (``tagged``).
`make images PUSH=1` also records, in images/digests.json, the digest the registry gave each pushed
image; where one is recorded for the current tag, the reference used here is
``<name>:<tag>@sha256:<digest>``, so compiled pipelines, the TrainJobs they start and the releases
they publish name exactly the image that was pushed, whatever the tag points to later. The tests
check that every component's base_image and the training runtime's image are one of these.

X2VLM_IMAGE_DIGESTS names another digests file; set empty, the tags alone are used (`make
run-containers`: images built locally carry no registry digest).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

REGISTRY = "us-docker.pkg.dev/x2vlm-platform/images"
TAG = "0.1.0"
NAMES = ("train", "beam", "publish")  # images/<name>/Dockerfile → <REGISTRY>/x2vlm-<name>
DIGESTS_ENV = "X2VLM_IMAGE_DIGESTS"
DEFAULT_DIGESTS_FILE = Path(__file__).resolve().parents[1] / "images" / "digests.json"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def tagged(name: str) -> str:
    """The tagged reference an image is built and pushed under."""
    if name not in NAMES:
        raise ValueError(f"no image named {name!r}; the images are {', '.join(NAMES)}")
    return f"{REGISTRY}/x2vlm-{name}:{TAG}"


def digests_file() -> Path | None:
    """The digests file in force: X2VLM_IMAGE_DIGESTS, else images/digests.json; None when set empty."""
    given = os.environ.get(DIGESTS_ENV)
    if given is None:
        return DEFAULT_DIGESTS_FILE
    return Path(given) if given.strip() else None


def recorded(path: Path | None) -> dict[str, str]:
    """Image name → ``name:tag@sha256:…`` from a digests file; only entries of the current tag count."""
    if path is None or not path.exists():
        return {}
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error}); rebuild it with make images PUSH=1") from None
    if not isinstance(entries, dict):
        raise ValueError(f"{path}: expected an object of image name → reference")
    pinned = {}
    for name, ref in entries.items():
        if name not in NAMES or not isinstance(ref, str):
            raise ValueError(f"{path}: {name!r} is not one of the images {', '.join(NAMES)} with a reference")
        base, _, digest = ref.partition("@")
        if not _DIGEST.fullmatch(digest):
            raise ValueError(f"{path}: {name}: {ref!r} has no sha256 digest")
        # A digest recorded for an earlier tag names an image this tag no longer means.
        if base == tagged(name):
            pinned[name] = ref
    return pinned


def record(name: str, digest: str, path: Path = DEFAULT_DIGESTS_FILE) -> str:
    """Record the digest a registry gave the pushed image ``tagged(name)``; returns the pinned reference."""
    if not _DIGEST.fullmatch(digest):
        raise ValueError(f"{digest!r} is not a sha256 image digest")
    entries = json.loads(path.read_text()) if path.exists() else {}
    entries[name] = f"{tagged(name)}@{digest}"
    path.write_text(json.dumps(dict(sorted(entries.items())), indent=2) + "\n")
    return entries[name]


_DIGESTS = recorded(digests_file())
TRAIN_IMAGE = _DIGESTS.get("train", tagged("train"))
BEAM_IMAGE = _DIGESTS.get("beam", tagged("beam"))
PUBLISH_IMAGE = _DIGESTS.get("publish", tagged("publish"))

# images/<folder>/Dockerfile → image reference.
IMAGES = {"train": TRAIN_IMAGE, "beam": BEAM_IMAGE, "publish": PUBLISH_IMAGE}


def main(argv: list[str]) -> int:
    """``tagged NAME``: the name to build under; ``record NAME METADATA``: the digest from the
    ``docker buildx build --metadata-file`` of a pushed build, into the digests file in force."""
    if len(argv) == 2 and argv[0] == "tagged":
        print(tagged(argv[1]))
        return 0
    if len(argv) == 3 and argv[0] == "record":
        metadata = json.loads(Path(argv[2]).read_text())
        digest = metadata.get("containerimage.digest", "")
        if not _DIGEST.fullmatch(digest):
            print(f"{argv[2]}: no containerimage.digest (was the image pushed?)", file=sys.stderr)
            return 1
        print(record(argv[1], digest, digests_file() or DEFAULT_DIGESTS_FILE))
        return 0
    print("usage: python -m components.images tagged NAME | record NAME BUILDX_METADATA_FILE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
