"""Official X²-VLM-based CCLM configs (``configs/pretrain/multilingual_cclm_x2vlm_*.yaml``) → ours.

The official ``XVLMPlusBase`` builder (zengyan-97/X2-VLM, ``model_type: CrossViewLM``) reads:

- a BEiT-2 from ``vision_config``, as X²-VLM does (``use_beit_v2``);
- the text encoder from the ``config.json`` in the ``text_encoder`` folder (XLM-R), cut to
  ``text_num_hidden_layers`` layers, none of them cross-attending; that folder's sentencepiece
  model is the tokenizer, so it must be at hand (``--text-encoder PATH``);
- the cross encoder from the BERT ``config.json`` in the ``cross_encoder`` folder:
  ``cross_num_hidden_layers`` layers that all cross-attend to the image, of the text encoder's
  width. Only its shape is read, so the published BERT names need no folder.

Its saved files are already in our layout (our CCLM model is named after ``XVLMPlusBase``).
``is_xvlm_ckpt`` and ``replace_text_encoder`` say how that run started, not what it saved, so
they are not mapped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from x2vlm_core.errors import ConfigError
from x2vlm_core.families.cclm.official_original import xlmr_folder
from x2vlm_core.families.spec import OfficialMapping, StateDict
from x2vlm_core.families.x2vlm.official import KNOWN_TEXT_ENCODERS, map_vision
from x2vlm_core.release.official_files import OfficialFiles

# BERT config.json key -> our cross encoder field.
CROSS_FIELDS = {
    "num_attention_heads": "num_heads",
    "intermediate_size": "intermediate_size",
    "layer_norm_eps": "layer_norm_eps",
    "hidden_dropout_prob": "hidden_dropout",
    "attention_probs_dropout_prob": "attention_dropout",
}
SCALAR_FIELDS = {
    "image_res": "image_res",
    "patch_size": "vision.patch_size",
    "embed_dim": "embed_dim",
    "temp": "temp",
    "max_tokens": "max_tokens",
    "cross_num_hidden_layers": "cross.num_layers",
}


def recognises(official: dict[str, Any]) -> bool:
    return "cross_encoder" in official


def to_config(official: dict[str, Any], state: StateDict, files: OfficialFiles) -> OfficialMapping:
    mapping = OfficialMapping()
    if not official.get("use_beit_v2"):
        raise ConfigError(
            "this X²-VLM-based CCLM config does not say use_beit_v2; only its BEiT-2 image encoder is implemented here"
        )
    if official.get("video_encoding"):
        raise ConfigError(f"video_encoding {official['video_encoding']!r}: CCLM models here take no video input")
    map_vision(official, files, mapping)
    text_width = _map_text_encoder(official, files, mapping)
    _map_cross_encoder(official, files, mapping, text_width)
    for key, ours in SCALAR_FIELDS.items():
        if key in official:
            mapping.map(key, official[key], ours, official[key])
    return mapping


def _map_text_encoder(official: dict[str, Any], files: OfficialFiles, mapping: OfficialMapping) -> int:
    name = str(official["text_encoder"])
    folder, arch, fields = xlmr_folder(name, files)
    mapping.map(f"{name}/config.json model_type", arch, "text_encoder.arch", arch)
    mapping.map(f"{name}/config.json", "(its fields)", "text_encoder.config", fields)
    if "text_num_hidden_layers" in official:
        layers = official["text_num_hidden_layers"]
        mapping.map("text_num_hidden_layers", layers, "text_encoder.config.num_hidden_layers", int(layers))
    if "dropout" in official:  # the official builder overrides the text encoder's hidden dropout
        mapping.map("dropout", official["dropout"], "text_encoder.config.hidden_dropout_prob", official["dropout"])
    mapping.map("text_encoder", name, "tokenizer", folder)
    return int(fields["hidden_size"])


def _map_cross_encoder(
    official: dict[str, Any], files: OfficialFiles, mapping: OfficialMapping, text_width: int
) -> None:
    name = str(official["cross_encoder"])
    what = "a folder with the BERT config.json"
    folder = files.folder("cross_encoder", name, ("config.json",), what)
    if folder is not None:
        bert, source = json.loads((folder / "config.json").read_text()), f"{name}/config.json"
    elif Path(name).name in KNOWN_TEXT_ENCODERS:
        bert, source = KNOWN_TEXT_ENCODERS[Path(name).name], f"{name} (published)"
    else:
        raise files.missing("cross_encoder", name, what)
    if bert["hidden_size"] != text_width:  # the official builder refuses it too
        raise ConfigError(
            f"cross_encoder {name!r} is {bert['hidden_size']} wide but the text encoder {text_width}; "
            "the official model needs one width (pick the BERT of the text encoder's size)"
        )
    for key, ours in CROSS_FIELDS.items():
        if key in bert:
            mapping.map(f"{source} {key}", bert[key], f"cross.{ours}", bert[key])
