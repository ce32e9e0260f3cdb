"""The "shapes world": a deterministic synthetic dataset in the real on-disk formats.

Every picture holds 1-3 coloured shapes (circle/square/triangle in red/green/blue/yellow)
at known, non-overlapping boxes on a plain background; every video (3-8 frames, MPEG-4 in MP4)
shows 1-2 shapes moving left, right, up or down. The generator writes, exactly as the real
datasets lay them out:

- COCO captions, the Karpathy split, Visual Genome regions and objects, VQA v2, NLVR2, RefCOCO+
  (with a ``dets.json`` of detection proposals: each shape's box and a few distractors);
- Conceptual-Captions-style downloads: img2dataset webdataset tars, img2dataset parquet + image
  folders, and a ``caption<TAB>path`` TSV;
- the official X²-VLM json-lines (ImageTextJsonDataset ``binary``/``desc``, RegionTextJsonDataset
  ``elems``/``bb``) and a CCLM multilingual file: the COCO train captions with their translation
  into "shapes-speak" (language code ``xx``), a made-up language with its own vocabulary, and a
  WikiMatrix-style parallel TSV of English/shapes-speak caption pairs;
- WebVid (csv + videos), MSR-VTT retrieval (videodatainfo json) and MSRVTT-QA;
- IGLUE-style cross-lingual sets: XVNLI, xGQA, MaRVL and xFlickr&CO.

So the real readers and the real prepare-data job run on it and a tiny model can learn it on CPU.

Same arguments give byte-identical files: fixed JPEG quality, sorted JSON keys, no timestamps,
and every random choice drawn from string-seeded generators (independent of PYTHONHASHSEED).

The world itself (scenes, drawing, captions, questions, clips, shapes-speak) is in the modules
beside this one; ``formats/`` holds one writer per dataset format, each returning the
sources.yaml entries of the files it wrote; ``generate`` runs them.
"""

from x2vlm_core.data.synthetic.captions import CAPTION_TEMPLATES
from x2vlm_core.data.synthetic.clips import DIRECTIONS, VIDEO_FRAMES
from x2vlm_core.data.synthetic.drawing import render
from x2vlm_core.data.synthetic.formats.parallel_tsv import PARALLEL_FILE
from x2vlm_core.data.synthetic.generate import generate_shapes_world
from x2vlm_core.data.synthetic.scenes import COLOURS, SHAPE_KINDS, Scene, SceneSampler, Shape
from x2vlm_core.data.synthetic.shapes_speak import SYNTHETIC_LANGUAGE, translate

__all__ = [
    "CAPTION_TEMPLATES",
    "COLOURS",
    "DIRECTIONS",
    "PARALLEL_FILE",
    "SHAPE_KINDS",
    "SYNTHETIC_LANGUAGE",
    "VIDEO_FRAMES",
    "Scene",
    "SceneSampler",
    "Shape",
    "generate_shapes_world",
    "render",
    "translate",
]
