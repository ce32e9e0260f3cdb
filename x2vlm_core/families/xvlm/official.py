"""Official X-VLM configs (``{'model': ..., 'config': ...}`` files, ``configs/Pretrain_XVLM_*.yaml``) → ours.

The official builder takes the image encoder from ``use_clip_vit`` (a CLIP ViT from the
``vision_config`` JSON), ``use_swin`` (a Swin from that JSON; the released models) or else a
DeiT-B/16 of fixed shape, and the BERT stack's shape from
the ``text_config`` JSON (its ``fusion_layer`` is where cross-attention starts). The
``text_encoder`` folder only gives the starting weights and the tokenizer (its ``vocab.txt``).
The released configs name ``configs/config_swinB_*.json``, ``configs/config_clipvitB.json`` and
``configs/config_bert.json``, known here by name; ``data/bert-base-uncased`` carries the built-in vocabulary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from x2vlm_core.errors import ConfigError
from x2vlm_core.families.spec import OfficialMapping, StateDict
from x2vlm_core.families.x2vlm.official import BERT_FIELDS, BUILTIN_VOCAB, KNOWN_TEXT_ENCODERS
from x2vlm_core.families.xvlm.checkpoint import is_task_layout
from x2vlm_core.families.xvlm.config import SWIN_PATCH
from x2vlm_core.release.official_files import OfficialFiles

_SWIN_B = {"embed_dim": 128, "depths": [2, 2, 18, 2], "num_heads": [4, 8, 16, 32]}
# The official configs/config_swinB_*.json, by name: Swin-B with the window of each image size.
KNOWN_SWIN = {
    "config_swinB_224.json": {**_SWIN_B, "window_size": 7},
    "config_swinB_384.json": {**_SWIN_B, "window_size": 12},
    "config_swinB_480.json": {**_SWIN_B, "window_size": 15},
}
_SWIN_FIELDS = {"embed_dim": "embed_dim", "depths": "depths", "num_heads": "stage_heads", "window_size": "window_size"}
# The official configs/config_clipvitB.json: CLIP ViT-B/16, local attention in the top 4 blocks.
KNOWN_CLIP = {
    "config_clipvitB.json": {
        "vision_width": 768,
        "patch_size": 16,
        "hidden_act": "quick_gelu",
        "num_attention_heads": 12,
        "attention_dropout": 0.0,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "local_attn_depth": 4,
    },
}
_CLIP_FIELDS = {
    "vision_width": "width",
    "num_hidden_layers": "depth",
    "num_attention_heads": "num_heads",
    "patch_size": "patch_size",
    "local_attn_depth": "local_attn_depth",
}
# The official configs/config_bert.json: BERT-base, 6 text + 6 fusion layers.
KNOWN_TEXT_CONFIGS = {
    "config_bert.json": {**KNOWN_TEXT_ENCODERS["bert-base-uncased"], "num_hidden_layers": 12, "fusion_layer": 6},
}
# The official DeiT branch builds one shape whatever the config says (local attention in the top 4
# blocks, no stochastic depth).
DEIT_B16 = {"width": 768, "depth": 12, "num_heads": 12, "patch_size": 16, "local_attn_depth": 4, "drop_path_rate": 0.0}
# The heads the official pre-training model has; each fine-tuning model (models/model_*.py) builds
# only its task's (retrieval: proj, temp, itm_head; grounding: bbox_head) and a BERT without MLM head.
PRETRAINING_HEADS = ("text_encoder.cls.", "vision_proj.", "text_proj.", "temp", "itm_head.", "bbox_head.")
# Fine-tuned task layouts that are not this model: what each is, and what to do instead.
OTHER_TASK_MODELS = {
    "text_decoder.": "a fine-tuned VQA or captioning model (its text_decoder.* answer/caption decoder)",
    "cls_head.": "a fine-tuned NLVR2 model (its two-image fusion and cls_head.*)",
}
SCALAR_FIELDS = {"image_res": "image_res", "embed_dim": "embed_dim", "temp": "temp", "max_tokens": "max_tokens"}


def recognises(official: dict[str, Any]) -> bool:
    # Only X-VLM's builder reads a text_config JSON; X²-VLM's and CCLM's read the text folder's config.json.
    return "text_config" in official and "cross_encoder" not in official and not official.get("use_beit_v2")


def to_config(official: dict[str, Any], state: StateDict, files: OfficialFiles) -> OfficialMapping:
    mapping = OfficialMapping()
    if official.get("use_roberta"):
        raise ConfigError(
            "use_roberta (a RoBERTa text stack, text_encoder.roberta.*) is not implemented for X-VLM here; "
            "only the BERT stack of the released models is"
        )
    if official.get("use_clip_vit"):
        _map_clip(official, files, mapping)
    elif official.get("use_swin"):
        map_swin(official, files, mapping, "vision")
    else:
        _map_deit(official, mapping)
    _map_text(official, files, mapping)
    for key, ours in SCALAR_FIELDS.items():
        if key in official:
            mapping.map(key, official[key], ours, official[key])
    _map_task_heads(state, mapping)
    return mapping


def _map_task_heads(state: StateDict, mapping: OfficialMapping) -> None:
    """A fine-tuned retrieval or grounding checkpoint is this model with some heads left out."""
    for prefix, what in OTHER_TASK_MODELS.items():
        if any(key.startswith(prefix) for key in state):
            raise ConfigError(
                f"the weights are {what}, which is not converted; import the pre-trained checkpoint "
                "and fine-tune it with `x2vlm finetune`"
            )
    absent = tuple(p for p in PRETRAINING_HEADS if not any(key.startswith(p) for key in state))
    if absent and is_task_layout(state):
        mapping.absent_prefixes += absent
        mapping.lines.append(
            f"a fine-tuned task model's weights: {', '.join(p.rstrip('.') for p in absent)} "
            "are not in them -> those heads keep their initialisation"
        )


def map_swin(official: dict[str, Any], files: OfficialFiles, mapping: OfficialMapping, field: str) -> None:
    """The Swin that ``vision_config`` names onto ``field`` (an ``XVLMVisionConfig``; CCLM's original uses it too)."""
    swin, source = files.config_json(
        "vision_config",
        str(official.get("vision_config", "")),
        KNOWN_SWIN,
        "the Swin config JSON",
        needs=tuple(_SWIN_FIELDS),
    )
    mapping.map(f"{source} (use_swin)", True, f"{field}.encoder", "swin")
    for key, ours in _SWIN_FIELDS.items():
        value = list(swin[key]) if isinstance(swin[key], list) else int(swin[key])
        mapping.map(f"{source} {key}", swin[key], f"{field}.{ours}", value)
    stride = SWIN_PATCH << (len(swin["depths"]) - 1)
    if "patch_size" in official and official["patch_size"] != stride:
        raise ConfigError(
            f"patch_size {official['patch_size']} disagrees with the Swin's total stride {stride} "
            f"({len(swin['depths'])} stages of patch {SWIN_PATCH})"
        )


def _map_clip(official: dict[str, Any], files: OfficialFiles, mapping: OfficialMapping) -> None:
    clip, source = files.config_json(
        "vision_config",
        str(official.get("vision_config", "")),
        KNOWN_CLIP,
        "the CLIP-ViT config JSON",
        needs=(*_CLIP_FIELDS, "intermediate_size"),
    )
    # timm's ViT block has these fixed; the official one reads them from the JSON.
    if clip.get("hidden_act", "quick_gelu") != "quick_gelu":
        raise ConfigError(
            f"{source}: hidden_act {clip['hidden_act']!r} is not CLIP's quick_gelu, the only one built here"
        )
    if clip["intermediate_size"] != 4 * clip["vision_width"]:
        raise ConfigError(
            f"{source}: intermediate_size {clip['intermediate_size']} is not 4 x vision_width "
            f"{clip['vision_width']}, the only MLP ratio built here"
        )
    if "patch_size" in official and official["patch_size"] != clip["patch_size"]:
        raise ConfigError(f"patch_size {official['patch_size']} disagrees with {source}'s {clip['patch_size']}")
    mapping.map(f"{source} (use_clip_vit)", True, "vision.encoder", "clip_vit")
    for key, ours in _CLIP_FIELDS.items():
        mapping.map(f"{source} {key}", clip[key], f"vision.{ours}", int(clip[key]))
    mapping.map(f"{source} (no stochastic depth)", None, "vision.drop_path_rate", 0.0)


def _map_deit(official: dict[str, Any], mapping: OfficialMapping) -> None:
    if official.get("patch_size", DEIT_B16["patch_size"]) != DEIT_B16["patch_size"]:
        raise ConfigError(f"patch_size {official['patch_size']} does not fit the official DeiT-B, which has patch 16")
    source, use_swin = "use_swin (the official DeiT-B/16)", official.get("use_swin", False)
    mapping.map(source, use_swin, "vision.encoder", "deit")
    for field, value in DEIT_B16.items():
        mapping.map(source, use_swin, f"vision.{field}", value)


def _map_text(official: dict[str, Any], files: OfficialFiles, mapping: OfficialMapping) -> None:
    bert, source = files.config_json(
        "text_config", str(official["text_config"]), KNOWN_TEXT_CONFIGS, "the BERT config JSON with fusion_layer"
    )
    for key, ours in {**BERT_FIELDS, "num_hidden_layers": "num_layers", "fusion_layer": "fusion_start_at"}.items():
        if key in bert:
            mapping.map(f"{source} {key}", bert[key], f"text.{ours}", bert[key])
    _map_tokenizer(official, files, mapping)


def _map_tokenizer(official: dict[str, Any], files: OfficialFiles, mapping: OfficialMapping) -> None:
    name = str(official.get("text_encoder", ""))
    what = "a folder with the BERT vocab.txt"
    folder = files.folder("text_encoder", name, ("vocab.txt",), what)
    if folder is not None:
        mapping.map("text_encoder", name, "tokenizer", str(folder))
    elif Path(name).name in KNOWN_TEXT_ENCODERS:
        mapping.map("text_encoder", name, "tokenizer", BUILTIN_VOCAB)
    else:
        raise files.missing("text_encoder", name, what)
