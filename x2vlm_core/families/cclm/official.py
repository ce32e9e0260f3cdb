"""Official CCLM checkpoints' configs → ours: the two official layouts, told apart by the config.

- the original CCLM (zengyan-97/CCLM, ``CrossViewLM`` over X-VLM): ``use_swin`` and an XLM-R
  ``text_encoder`` whose one stack holds text and fusion layers (``official_original``);
- the X²-VLM-based CCLM (zengyan-97/X2-VLM, ``XVLMPlusBase``): a separate ``cross_encoder``
  beside the XLM-R ``text_encoder``, on BEiT-2 (``official_x2vlm_based``).
"""

from __future__ import annotations

from typing import Any

from x2vlm_core.families.cclm import official_original, official_x2vlm_based
from x2vlm_core.families.spec import OfficialMapping, StateDict
from x2vlm_core.release.official_files import OfficialFiles

LAYOUTS = (official_x2vlm_based, official_original)


def recognises(official: dict[str, Any]) -> bool:
    return any(layout.recognises(official) for layout in LAYOUTS)


def to_config(official: dict[str, Any], state: StateDict, files: OfficialFiles) -> OfficialMapping:
    layout = next(layout for layout in LAYOUTS if layout.recognises(official))
    return layout.to_config(official, state, files)
