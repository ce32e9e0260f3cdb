"""Checkpoints that outlive the pod: a run-scoped durable prefix, local or ``gs://``.

Checkpoints of a pipeline step live under ``<checkpoint_root>/<run id>/<step name>/step<N>/``,
so a retried attempt of the same step in the same run finds them, and no other run or step does.
A local (or PVC) root is written directly. DeepSpeed writes only to a filesystem, so for a
``gs://`` root it writes to a local staging folder, and each complete checkpoint is uploaded
with ``complete.json`` last; a retry downloads the newest complete one into staging, where the
loop verifies its sha256s and resumes from it as from any local checkpoint.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

from x2vlm_core import storage
from x2vlm_core.errors import CheckpointError, ConfigError
from x2vlm_core.train import checkpointing
from x2vlm_core.train.checkpointing import COMPLETE, tag_of
from x2vlm_core.train.distributed import barrier

log = logging.getLogger(__name__)

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_STEP = re.compile(r"step(\d+)")


def checkpoint_location(root: str, run_id: str, step_name: str) -> str:
    """``<root>/<run_id>/<step_name>``; ``run_id`` must be one plain path component."""
    if not _RUN_ID.fullmatch(run_id or "") or run_id in (".", ".."):
        raise ConfigError(
            f"--run-id {run_id!r} must be letters, digits, '.', '_' or '-' (at most 128), e.g. the pipeline run id"
        )
    return storage.join(root, run_id, step_name)


def _remote_markers(remote: str) -> dict[int, str]:
    """``{step: marker URI}`` of every checkpoint under ``remote`` whose marker was uploaded."""
    found = {}
    prefix = remote.rstrip("/") + "/"
    for uri in storage.list_uris(remote):
        parts = uri[len(prefix) :].split("/")
        match = _STEP.fullmatch(parts[0])
        if match and parts[1:] == [COMPLETE]:
            found[int(match[1])] = uri
    return found


class GcsMirror:
    """Uploads each complete checkpoint in ``local`` to ``remote`` and restores the newest from it.

    Every node stages in its own folder. Restoring, each node's local rank 0 downloads the whole
    checkpoint (DeepSpeed reads every rank's optimizer shard). Saving, the other nodes upload their
    files and rank 0 fetches them, so that its folder is whole for the consolidated model and the
    marker's hashes; rank 0 then uploads the rest and the marker last.
    """

    def __init__(
        self,
        remote: str,
        local: str | Path,
        rank: int,
        local_rank: int,
        world_size: int,
        local_world_size: int | None = None,
    ) -> None:
        self.remote, self.local = remote.rstrip("/"), Path(local)
        self.rank, self.local_rank, self.world_size = rank, local_rank, world_size
        self.node_size = local_world_size or world_size
        self._fetched: set[str] = set()

    @property
    def _main_node(self) -> bool:
        return self.rank < self.node_size  # torchrun numbers ranks node by node

    def restore(self) -> int | None:
        """Make the staging folder hold exactly the newest complete remote checkpoint; returns its step."""
        newest = None
        if self.local_rank == 0:
            markers = _remote_markers(self.remote)
            newest = max(markers) if markers else None
            keep = tag_of(newest) if newest is not None else None
            # Staging is a cache of the remote: a local save that never reached it does not count.
            for folder in self.local.iterdir() if self.local.is_dir() else []:
                if _STEP.fullmatch(folder.name) and folder.name != keep:
                    shutil.rmtree(folder)
            if newest is not None:
                self._download(tag_of(newest), markers[newest])
        barrier(self.world_size)
        return newest

    def _download(self, tag: str, marker_uri: str) -> None:
        marker_bytes = storage.read_bytes(marker_uri)
        try:
            files = json.loads(marker_bytes)["files"]
            names = sorted(files)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise CheckpointError(
                f"{marker_uri} is not a checkpoint marker with file hashes; delete that "
                "checkpoint to resume from the one before"
            ) from None
        folder = self.local / tag
        if (
            (folder / COMPLETE).is_file()
            and (folder / COMPLETE).read_bytes() == marker_bytes
            and checkpointing.file_hashes(folder) == files
        ):
            return  # this node holds it already (the same pod, restarted)
        shutil.rmtree(folder, ignore_errors=True)
        for relative in names:
            # Only the files the marker lists, and only inside the folder: the bucket may hold others.
            if not storage.stays_inside(relative):
                raise CheckpointError(f"{marker_uri} lists {relative!r}, outside its checkpoint folder")
            storage.download_file(storage.join(self.remote, tag, relative), folder / relative)
        storage.write_bytes(folder / COMPLETE, marker_bytes)  # last, as when it was saved
        log.info("downloaded checkpoint %s/%s", self.remote, tag)

    def _local_files(self, tag: str) -> list[Path]:
        folder = self.local / tag
        return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != COMPLETE)

    def collect(self, tag: str) -> None:
        """On every rank, once every rank saved: other nodes' files up, and down into rank 0's folder."""
        self._fetched = set()
        if self.node_size >= self.world_size:
            return  # one node: rank 0's folder holds every rank's files
        target, folder = storage.join(self.remote, tag), self.local / tag
        if self.local_rank == 0 and not self._main_node:
            for path in self._local_files(tag):
                storage.upload_file(path, storage.join(target, path.relative_to(folder).as_posix()))
        barrier(self.world_size)
        if self.rank == 0:
            for uri in storage.list_uris(target):
                relative = uri[len(target) + 1 :]
                if storage.stays_inside(relative) and not (folder / relative).exists():
                    storage.download_file(uri, folder / relative)
                    self._fetched.add(relative)

    def upload(self, tag: str) -> str:
        """After ``save_checkpoint`` on every rank: the rest of ``tag`` up, marker last; returns its URI."""
        folder, target = self.local / tag, storage.join(self.remote, tag)
        if self.rank == 0:
            if storage.exists(storage.join(target, COMPLETE)):  # saved again: not complete until re-marked
                storage.delete(storage.join(target, COMPLETE))
            for path in self._local_files(tag):
                relative = path.relative_to(folder).as_posix()
                if relative not in self._fetched:
                    storage.upload_file(path, storage.join(target, relative))
            storage.upload_file(folder / COMPLETE, storage.join(target, COMPLETE))
            self._prune(int(tag[4:]))
            log.info("uploaded checkpoint %s", target)
        elif self.local_rank == 0 and not self._main_node:
            for old in self.local.glob("step*"):  # uploaded: a retry downloads them again
                shutil.rmtree(old, ignore_errors=True)
        barrier(self.world_size)
        return target

    def _prune(self, current: int) -> None:
        """Drop the remote checkpoints rank 0 dropped (keep_checkpoints), and leftovers of cut-short saves."""
        kept = {step for step, _, _ in checkpointing.complete_checkpoints(self.local)} | {current}
        markers = _remote_markers(self.remote)
        prefix = self.remote + "/"
        doomed: dict[int, list[str]] = {}
        for uri in storage.list_uris(self.remote):
            match = _STEP.fullmatch(uri[len(prefix) :].split("/")[0])
            if match and int(match[1]) not in kept:
                doomed.setdefault(int(match[1]), []).append(uri)
        for step, uris in doomed.items():
            if step in markers:  # the marker goes first: a half-deleted checkpoint is never taken as complete
                storage.delete(markers[step])
            for uri in uris:
                if uri != markers.get(step):
                    storage.delete(uri)
