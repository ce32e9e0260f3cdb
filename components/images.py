"""The container images the components run in; the tag is set here and nowhere else."""

REGISTRY = "us-docker.pkg.dev/x2vlm-platform/images"
TAG = "0.1.0"

TRAIN_IMAGE = f"{REGISTRY}/x2vlm-train:{TAG}"
BEAM_IMAGE = f"{REGISTRY}/x2vlm-beam:{TAG}"
PUBLISH_IMAGE = f"{REGISTRY}/x2vlm-publish:{TAG}"
