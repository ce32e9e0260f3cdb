"""Fine-tuned task models as releases of their own, linked to the release they were fine-tuned from.

A task model of ``<model_name>`` is published as ``<model_name>-<task>`` (its own versions and
LATEST), with ``lineage.json`` naming its parent: the pre-trained model's release (and version)
when that was published, or the model folder it started from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from x2vlm_core import storage
from x2vlm_core.errors import ReleaseError
from x2vlm_core.release.fetch import MANIFEST, resolve_release
from x2vlm_core.release.publish import DEFAULT_MAX_SHARD_BYTES, publish_release


def task_release_name(model_name: str, task: str) -> str:
    return f"{model_name}-{task}"


def parent_release_of(model_uri: str) -> str:
    """The release a model URI is (a version folder, or a model folder with LATEST); empty when it is a
    plain model folder (a pretrain or finetune output)."""
    if storage.exists(storage.join(model_uri, MANIFEST)):
        return model_uri.rstrip("/")
    try:
        return resolve_release(model_uri)
    except ReleaseError:
        return ""


def publish_task_release(
    model_dir: str | Path,
    destination: str,
    model_name: str,
    task: str,
    metrics: dict[str, Any],
    lineage: dict[str, Any],
    parent_model: str,
    parent_release: str = "",
    version: str | None = None,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
) -> str:
    """Publish one task model as ``<destination>/<model_name>-<task>/<version>/``; returns its URI.

    ``metrics`` are this task's values; ``parent_model`` the URI of the model it was fine-tuned from,
    ``parent_release`` that model's release, if it was published.
    """
    lineage = {
        **lineage,
        "task": task,
        "parent": {"model": parent_model, "release": parent_release or None, "release_name": model_name},
    }
    return publish_release(
        model_dir,
        destination,
        task_release_name(model_name, task),
        metrics={task: metrics},
        lineage=lineage,
        version=version,
        max_shard_bytes=max_shard_bytes,
    )
