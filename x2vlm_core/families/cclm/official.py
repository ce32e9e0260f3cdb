"""Official original-CCLM configs (``{'model': ..., 'config': ...}`` files, ``configs/Pretrain_*.yaml``) → ours.

The official ``CrossViewLM`` builder (X-VLM's, with ``use_swin``) reads a Swin from the
``vision_config`` JSON and a BERT-style stack from the ``config.json`` in the ``text_encoder``
folder, an XLM-R one: ``text_num_hidden_layers`` layers (12 for XLM-R large), the lower half text
layers, the upper half fusion layers. That folder's sentencepiece model is the tokenizer, so it
must be at hand (``--text-encoder PATH``). The released Swin-B configs are known by name.

The X²-VLM-based CCLM checkpoints (``XVLMPlusBase``, a ``cross_encoder`` in the config) are
not recognised here yet.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from x2vlm_core.errors import ConfigError
from x2vlm_core.families.spec import OfficialMapping, StateDict
from x2vlm_core.release.official_files import OfficialFiles

_SWIN_B = {"embed_dim": 128, "depths": [2, 2, 18, 2], "num_heads": [4, 8, 16, 32]}
# The official configs/config_swinB_*.json, by name: Swin-B with the window of each image size.
KNOWN_SWIN = {
    "config_swinB_224.json": {**_SWIN_B, "window_size": 7},
    "config_swinB_384.json": {**_SWIN_B, "window_size": 12},
    "config_swinB_480.json": {**_SWIN_B, "window_size": 15},
}
# config.json keys that say nothing about the stack's shape.
_NOT_SHAPE = ("architectures", "model_type", "output_past", "transformers_version", "_name_or_path", "torch_dtype")
SCALAR_FIELDS = {"image_res": "image_res", "embed_dim": "embed_dim", "temp": "temp", "max_tokens": "max_tokens"}
DEFAULT_LAYERS = 12  # the official builder's value when text_num_hidden_layers is unset


def recognises(official: dict[str, Any]) -> bool:
    # X-VLM configs also say use_swin, with a BERT text encoder; CCLM's names an XLM-R folder.
    return (
        bool(official.get("use_swin"))
        and "roberta" in str(official.get("text_encoder", ""))
        and "cross_encoder" not in official
    )


def to_config(official: dict[str, Any], state: StateDict, files: OfficialFiles) -> OfficialMapping:
    mapping = OfficialMapping()
    if official.get("use_one_cl_proj_only"):
        raise ConfigError(
            "use_one_cl_proj_only (one projection shared by images and texts) is not implemented "
            "here; only separate vision_proj and text_proj are"
        )
    _map_vision(official, files, mapping)
    _map_text(official, files, mapping)
    for key, ours in SCALAR_FIELDS.items():
        if key in official:
            mapping.map(key, official[key], ours, official[key])
    return mapping


def _map_vision(official: dict[str, Any], files: OfficialFiles, mapping: OfficialMapping) -> None:
    name = str(official.get("vision_config", ""))
    found = files.find("vision_config", name)
    if found is not None:
        swin, source = json.loads(found.read_text()), name
    elif Path(name).name in KNOWN_SWIN:
        swin, source = KNOWN_SWIN[Path(name).name], f"{name} (published)"
    else:
        raise files.missing("vision_config", name, "the Swin config JSON")
    mapping.map(f"{source} (use_swin)", True, "swin.encoder", "swin")
    for key, ours in (
        ("embed_dim", "embed_dim"),
        ("depths", "depths"),
        ("num_heads", "stage_heads"),
        ("window_size", "window_size"),
    ):
        value = list(swin[key]) if isinstance(swin[key], list) else int(swin[key])
        mapping.map(f"{source} {key}", swin[key], f"swin.{ours}", value)
    stride = 4 << (len(swin["depths"]) - 1)
    if "patch_size" in official and official["patch_size"] != stride:
        raise ConfigError(
            f"patch_size {official['patch_size']} disagrees with the Swin's total stride {stride} "
            f"({len(swin['depths'])} stages of patch 4)"
        )


def _map_text(official: dict[str, Any], files: OfficialFiles, mapping: OfficialMapping) -> None:
    name = str(official["text_encoder"])
    what = "the XLM-R folder with config.json and sentencepiece.bpe.model"
    folder = files.find("text_encoder", name)
    if folder is None:
        raise files.missing("text_encoder", name, what)
    if not (folder / "config.json").is_file() or not (folder / "sentencepiece.bpe.model").is_file():
        raise ConfigError(
            f"text_encoder folder {folder} lacks config.json or sentencepiece.bpe.model; pass {what} "
            "with --text-encoder PATH"
        )
    xlmr = {k: v for k, v in json.loads((folder / "config.json").read_text()).items() if k not in _NOT_SHAPE}
    layers = int(official.get("text_num_hidden_layers", DEFAULT_LAYERS))
    text_layers = layers // 2  # the official fusion_layer
    mapping.map("text_encoder", name, "text_encoder.arch", "xlm-roberta")
    mapping.map(
        f"{name}/config.json", "(its fields)", "text_encoder.config", {**xlmr, "num_hidden_layers": text_layers}
    )
    mapping.lines.append(
        f"text_num_hidden_layers = {layers} -> text layers 0-{text_layers - 1}, "
        f"fusion layers {text_layers}-{layers - 1}"
    )
    mapping.map("text_num_hidden_layers", layers, "cross.num_layers", layers - text_layers)
    mapping.map(
        f"{name}/config.json num_attention_heads",
        xlmr["num_attention_heads"],
        "cross.num_heads",
        xlmr["num_attention_heads"],
    )
    mapping.map(
        f"{name}/config.json intermediate_size",
        xlmr["intermediate_size"],
        "cross.intermediate_size",
        xlmr["intermediate_size"],
    )
    mapping.map("text_encoder", name, "tokenizer", str(folder))
