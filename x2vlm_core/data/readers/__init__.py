"""Readers that turn each raw dataset format into normalised, JSON-able records.

Every record has ``key`` (webdataset-safe, unique within its dataset), ``dataset``, ``source``
(the format), ``kind``, ``split`` and ``image_paths`` (absolute), plus the fields of its kind:

- ``image_text``:  ``image_id``, ``captions``
- ``region_text``: ``image_id``, ``regions`` [{bbox [x, y, w, h] in pixels, caption}], ``captions`` []
- ``vqa``:         ``image_id``, ``question_id``, ``question``, ``answers`` (raw, 10), ``answer_scores``, ``answer_type``
- ``nlvr2``:       ``identifier``, ``sentence``, ``label`` (bool); two image paths
- ``grounding``:   ``ref_id``, ``image_id``, ``sentences``, ``bbox`` [x, y, w, h] in pixels

Readers check the annotation files; they do not open images (missing or broken images are
rejects of the image step, not errors).
"""

from __future__ import annotations

from types import ModuleType
from typing import Iterator

from x2vlm_core.data.readers import coco_captions, karpathy, nlvr2, refcoco, visual_genome, vqa_v2
from x2vlm_core.data.sources import SOURCE_FORMATS, Source
from x2vlm_core.errors import ConfigError

READERS: dict[str, ModuleType] = {
    "coco_captions": coco_captions,
    "karpathy": karpathy,
    "visual_genome": visual_genome,
    "vqa_v2": vqa_v2,
    "nlvr2": nlvr2,
    "refcoco": refcoco,
}
assert set(READERS) == set(SOURCE_FORMATS), "every source format needs a reader"


def read_source(source: Source) -> Iterator[dict]:
    """Yield the normalised records of one validated source (see ``x2vlm_core.data.sources``)."""
    if source.format not in READERS:
        raise ConfigError(f"source format {source.format!r} has no reader; use one of {sorted(READERS)}")
    return READERS[source.format].read(source)
