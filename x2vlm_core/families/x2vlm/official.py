"""Official X²-VLM configs (``{'model': ..., 'config': ...}`` files, ``configs/pretrain/*.yaml``) → ours.

The official builder reads a BEiT-2 vision encoder from ``vision_config`` (base or large, picked
by the file's name; ``vision_num_hidden_layers`` cuts its depth) and a BERT text/fusion stack
from the ``config.json`` in the ``text_encoder`` folder (``text_num_hidden_layers`` layers,
cross-attention from ``text_fusion_start_at``), whose ``vocab.txt`` is the tokenizer. Released
checkpoints name ``data/bert-base-uncased`` or ``data/bert-large-uncased-12l``, which nobody
has beside the checkpoint: those names carry BERT's published sizes and the built-in
``bert-base-uncased`` vocabulary (the large model's uncased vocabulary is the same).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from x2vlm_core.errors import ConfigError
from x2vlm_core.families.spec import OfficialMapping, StateDict
from x2vlm_core.release.official_files import OfficialFiles

BUILTIN_VOCAB = "builtin:bert-base-uncased"
_BERT_BASE = {"hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072}
_BERT_LARGE = {"hidden_size": 1024, "num_attention_heads": 16, "intermediate_size": 4096}
_BERT_COMMON = {
    "vocab_size": 30522,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "pad_token_id": 0,
    "layer_norm_eps": 1e-12,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
}
KNOWN_TEXT_ENCODERS = {
    "bert-base-uncased": {**_BERT_COMMON, **_BERT_BASE},
    "bert-large-uncased": {**_BERT_COMMON, **_BERT_LARGE},
    "bert-large-uncased-12l": {**_BERT_COMMON, **_BERT_LARGE},  # bert-large's first 12 layers
}
# BERT config.json key -> our text field.
BERT_FIELDS = {
    "vocab_size": "vocab_size",
    "hidden_size": "hidden_size",
    "num_attention_heads": "num_heads",
    "intermediate_size": "intermediate_size",
    "max_position_embeddings": "max_position_embeddings",
    "type_vocab_size": "type_vocab_size",
    "pad_token_id": "pad_token_id",
    "layer_norm_eps": "layer_norm_eps",
    "hidden_dropout_prob": "hidden_dropout",
    "attention_probs_dropout_prob": "attention_dropout",
}
# The two BEiT-2 shapes of the official builder, chosen by "base"/"large" in the vision config's name.
BEIT2_SHAPES = {
    "base": {"width": 768, "depth": 12, "num_heads": 12},
    "large": {"width": 1024, "depth": 24, "num_heads": 16},
}
# Top-level official key -> our field, copied as they are.
SCALAR_FIELDS = {
    "image_res": "image_res",
    "patch_size": "vision.patch_size",
    "embed_dim": "embed_dim",
    "temp": "temp",
    "max_tokens": "max_tokens",
    "text_num_hidden_layers": "text.num_layers",
    "text_fusion_start_at": "text.fusion_start_at",
}


def recognises(official: dict[str, Any]) -> bool:
    # CCLM's XVLMPlusBase configs also use BEiT-2 but name a separate cross_encoder.
    return bool(official.get("use_beit_v2")) and "text_encoder" in official and "cross_encoder" not in official


def to_config(official: dict[str, Any], state: StateDict, files: OfficialFiles) -> OfficialMapping:
    mapping = OfficialMapping()
    _refuse_unsupported(official)
    map_vision(official, files, mapping)
    _map_text(official, files, mapping)
    for key, ours in SCALAR_FIELDS.items():
        if key in official:
            mapping.map(key, official[key], ours, official[key])
    if "dropout" in official:  # the official fine-tuning configs override BERT's hidden dropout
        mapping.map("dropout", official["dropout"], "text.hidden_dropout", official["dropout"])
    if official.get("video_encoding"):
        mapping.map("frame_len", official["frame_len"], "frame_len", int(official["frame_len"]))
    else:
        mapping.map("video_encoding", official.get("video_encoding", ""), "frame_len", 0)
    if official.get("fix_temp"):
        mapping.absent_prefixes += ("temp",)
        mapping.lines.append("fix_temp = True -> temp is no weight there; ours starts at the config's temp")
    return mapping


def _refuse_unsupported(official: dict[str, Any]) -> None:
    if official.get("video_encoding") not in (None, "", "avgpool"):
        raise ConfigError(f"video_encoding {official['video_encoding']!r} is not implemented here; only 'avgpool' is")
    if official.get("video_encoding") and not official.get("add_frame_pos"):
        raise ConfigError(
            "video_encoding without add_frame_pos (no frame position embedding) is not implemented "
            "here; video models here always add one"
        )


def map_vision(official: dict[str, Any], files: OfficialFiles, mapping: OfficialMapping) -> None:
    """The BEiT-2 that ``vision_config`` names onto ``vision.*`` (CCLM's X²-VLM-based configs name one too)."""
    if official.get("local_attn_depth", -1) not in (-1, 0):
        raise ConfigError(
            f"local_attn_depth {official['local_attn_depth']} (windowed attention in the last BEiT-2 "
            "blocks) is not implemented here; only full attention (-1) is"
        )
    name = str(official.get("vision_config", ""))
    size = next((size for size in BEIT2_SHAPES if size in Path(name).name), None)
    if size is None:
        raise ConfigError(
            f"vision_config {name!r} names neither a base nor a large BEiT-2, the two the official "
            "builder knows (it picks one by 'base' or 'large' in the file name)"
        )
    for field, value in BEIT2_SHAPES[size].items():
        mapping.map("vision_config", name, f"vision.{field}", value)
    layers = official.get("vision_num_hidden_layers", -1)
    if layers and layers > 0:
        mapping.map("vision_num_hidden_layers", layers, "vision.depth", int(layers))
    found = files.find("vision_config", name)
    if found is not None:  # only a check: the name alone decides the shape, as officially
        vision = json.loads(found.read_text())
        if vision.get("vision_width") != BEIT2_SHAPES[size]["width"]:
            raise ConfigError(
                f"{found}: vision_width {vision.get('vision_width')} disagrees with the BEiT-2 {size} "
                f"its name picks (width {BEIT2_SHAPES[size]['width']})"
            )
        if "patch_size" in official and vision.get("patch_size") != official["patch_size"]:
            raise ConfigError(
                f"{found}: patch_size {vision.get('patch_size')} disagrees with the config's "
                f"patch_size {official['patch_size']}"
            )


def _map_text(official: dict[str, Any], files: OfficialFiles, mapping: OfficialMapping) -> None:
    name = str(official["text_encoder"])
    if "roberta" in name:
        raise ConfigError(f"text_encoder {name!r} is a RoBERTa; X²-VLM checkpoints here have a BERT text encoder")
    what = "a folder with the BERT config.json and vocab.txt"
    folder = files.folder("text_encoder", name, ("config.json", "vocab.txt"), what)
    if folder is not None:
        bert, source, tokenizer = json.loads((folder / "config.json").read_text()), f"{name}/config.json", str(folder)
    elif Path(name).name in KNOWN_TEXT_ENCODERS:
        bert, source, tokenizer = KNOWN_TEXT_ENCODERS[Path(name).name], f"{name} (published)", BUILTIN_VOCAB
    else:
        raise files.missing("text_encoder", name, what)
    for key, ours in BERT_FIELDS.items():
        if key in bert:
            mapping.map(f"{source} {key}", bert[key], f"text.{ours}", bert[key])
    mapping.map("text_encoder", name, "tokenizer", tokenizer)
