"""The container images the components run in; the tag is set here and nowhere else.

`make images` builds them (images/<name>/Dockerfile) under these names, and the tests check
that every component's base_image and the training runtime's image are one of them.
"""

REGISTRY = "us-docker.pkg.dev/x2vlm-platform/images"
TAG = "0.1.0"

TRAIN_IMAGE = f"{REGISTRY}/x2vlm-train:{TAG}"
BEAM_IMAGE = f"{REGISTRY}/x2vlm-beam:{TAG}"
PUBLISH_IMAGE = f"{REGISTRY}/x2vlm-publish:{TAG}"

# images/<folder>/Dockerfile → image reference.
IMAGES = {"train": TRAIN_IMAGE, "beam": BEAM_IMAGE, "publish": PUBLISH_IMAGE}
