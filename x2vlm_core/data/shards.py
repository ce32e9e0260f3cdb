"""Reading prepared data: ``index.json`` and the webdataset shards it lists."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from webdataset.tariterators import group_by_keys, tar_file_iterator

from x2vlm_core.errors import DataError

INDEX_FILE = "index.json"
_PAIR_MEMBER = re.compile(r"img(\d+)\.jpg")


def read_index(root: str | Path) -> dict[str, Any]:
    path = Path(root) / INDEX_FILE
    if not path.is_file():
        raise DataError(f"{path} does not exist; run prepare-data into {root} first (the index is written last)")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({error}); re-run prepare-data") from None
    if not isinstance(index, dict) or not isinstance(index.get("datasets"), dict):
        raise DataError(f"{path}: has no 'datasets' mapping; is this a prepare-data index?")
    return index


def list_shards(root: str | Path, dataset: str, split: str) -> list[str]:
    """Absolute paths of the shards of ``dataset``/``split``, in order."""
    datasets = read_index(root)["datasets"]
    if split not in datasets.get(dataset, {}):
        available = {name: sorted(splits) for name, splits in sorted(datasets.items())}
        raise DataError(f"{Path(root) / INDEX_FILE}: no dataset {dataset!r} with split {split!r}; available: {available}")
    return [str(Path(root) / shard["path"]) for shard in datasets[dataset][split]["shards"]]


def iter_shard_samples(paths: Iterable[str | Path]) -> Iterator[dict[str, Any]]:
    """Yield ``{"key", "meta", "images": [jpeg bytes, ...]}`` for every sample, shard by shard, in stored order."""
    for path in paths:
        try:
            with open(path, "rb") as handle:
                members = ({**member, "__url__": str(path)} for member in tar_file_iterator(handle))
                for sample in group_by_keys(members):
                    yield _decode(sample, path)
        except (tarfile.TarError, OSError) as error:
            raise DataError(f"{path}: unreadable shard ({error}); re-run prepare-data to rewrite it") from None


def _decode(sample: dict[str, Any], path: str | Path) -> dict[str, Any]:
    key = sample["__key__"]
    if "json" not in sample:
        raise DataError(f"{path}: sample {key!r} has no {key}.json member; re-run prepare-data to rewrite the shard")
    if "jpg" in sample:
        images = [sample["jpg"]]
    else:
        numbered = sorted((int(match[1]), name) for name in sample if (match := _PAIR_MEMBER.fullmatch(name)))
        images = [sample[name] for _, name in numbered]
    if not images:
        raise DataError(f"{path}: sample {key!r} has no image member; re-run prepare-data to rewrite the shard")
    return {"key": key, "meta": json.loads(sample["json"]), "images": images}
