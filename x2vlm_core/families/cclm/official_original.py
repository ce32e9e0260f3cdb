"""Official original-CCLM configs (``configs/Pretrain_*.yaml``, ``CrossViewLM`` of zengyan-97/CCLM) → ours.

The official builder (X-VLM's, with ``use_swin``) reads a Swin from the ``vision_config`` JSON
and a BERT-style stack from the ``config.json`` in the ``text_encoder`` folder, an XLM-R one:
``text_num_hidden_layers`` layers (12 for XLM-R large), the lower half text layers, the upper
half fusion layers. That folder's sentencepiece model is the tokenizer, so it must be at hand
(``--text-encoder PATH``). The released Swin-B configs are known by name.
"""

from __future__ import annotations

from typing import Any

from x2vlm_core.errors import ConfigError
from x2vlm_core.families.cclm.config import text_encoder_from_folder
from x2vlm_core.families.spec import OfficialMapping, StateDict
from x2vlm_core.families.xvlm.official import map_swin
from x2vlm_core.release.official_files import OfficialFiles

XLMR_FILES = ("config.json", "sentencepiece.bpe.model")
XLMR_FOLDER = "the XLM-R folder with config.json and sentencepiece.bpe.model"
SCALAR_FIELDS = {"image_res": "image_res", "embed_dim": "embed_dim", "temp": "temp", "max_tokens": "max_tokens"}
DEFAULT_LAYERS = 12  # the official builder's value when text_num_hidden_layers is unset


def recognises(official: dict[str, Any]) -> bool:
    # X-VLM configs also say use_swin, but name a text_config (a RoBERTa one too, with use_roberta).
    return (
        bool(official.get("use_swin"))
        and "roberta" in str(official.get("text_encoder", ""))
        and "text_config" not in official
    )


def to_config(official: dict[str, Any], state: StateDict, files: OfficialFiles) -> OfficialMapping:
    mapping = OfficialMapping()
    if official.get("use_one_cl_proj_only"):
        raise ConfigError(
            "use_one_cl_proj_only (one projection shared by images and texts) is not implemented "
            "here; only separate vision_proj and text_proj are"
        )
    map_swin(official, files, mapping, "swin")
    _map_text(official, files, mapping)
    for key, ours in SCALAR_FIELDS.items():
        if key in official:
            mapping.map(key, official[key], ours, official[key])
    return mapping


def xlmr_folder(name: str, files: OfficialFiles) -> tuple[str, str, dict[str, Any]]:
    """The XLM-R folder that ``text_encoder: name`` stands for: its path, model_type and shape fields."""
    folder = files.folder("text_encoder", name, XLMR_FILES, XLMR_FOLDER)
    if folder is None:
        raise files.missing("text_encoder", name, XLMR_FOLDER)
    text_encoder = text_encoder_from_folder(folder)
    return str(folder), text_encoder["arch"], text_encoder["config"]


def _map_text(official: dict[str, Any], files: OfficialFiles, mapping: OfficialMapping) -> None:
    name = str(official["text_encoder"])
    folder, _, xlmr = xlmr_folder(name, files)  # run as BERT whatever its model_type
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
    mapping.map("text_encoder", name, "tokenizer", folder)
