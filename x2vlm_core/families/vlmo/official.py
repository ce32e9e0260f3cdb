"""Official VLMo configs (microsoft/unilm ``vlmo/config.py``, saved by Lightning as
``hyper_parameters['config']``) → ours.

``model_arch`` names one of the three architectures the official code registers; their sizes are
our presets. A checkpoint of any other architecture gets its sizes from its weights (width from
the CLS token, depth from the blocks, heads from the shared position table's columns, ...).
``loss_names`` says which heads the official model built: the VQA and NLVR2 classifiers become
our task heads; pre-training heads it did not build keep our initialisation; the text-only stage
(``textmlm``) has no VL-FFN.
"""

from __future__ import annotations

import re
from typing import Any

from x2vlm_core.errors import ConfigError
from x2vlm_core.families.spec import OfficialMapping, StateDict
from x2vlm_core.families.vlmo.checkpoint import DEEPSPEED_PREFIX
from x2vlm_core.families.vlmo.config import VLMO_PRESETS
from x2vlm_core.release.official_files import OfficialFiles

# Every official architecture: patch 16, FFN 4x (multiway_transformer.py); sizes as our presets.
OFFICIAL_ARCHS = {
    "vlmo_base_patch16": "vlmo_base",
    "vlmo_base_plus_patch16": "vlmo_base_plus",
    "vlmo_large_patch16": "vlmo_large",
}
OFFICIAL_ARCH_FIXED = {"patch_size": 16, "mlp_ratio": 4.0}
BUILTIN_VOCABS = {"bert-base-uncased": "builtin:bert-base-uncased"}
SCALAR_FIELDS = {
    "image_size": "image_res",
    "max_text_len": "max_tokens",
    "max_text_len_of_initckpt": "text_rel_pos_len",
    "vocab_size": "vocab_size",
    "drop_path_rate": "drop_path_rate",
}
# Pre-training heads, by the loss that builds them (the official ``VLMo.__init__``).
HEADS_OF_LOSS = {
    "mlm": ("mlm_score.",),
    "itm": ("itm_score.",),
    "itc": (
        "itc_text_proj.",
        "itc_image_proj.",
        "itc_vl_text_proj.",
        "itc_vl_image_proj.",
        "logit_scale",
        "logit_vl_scale",
    ),
}
_BLOCK = re.compile(r"^transformer\.blocks\.(\d+)\.")


def recognises(official: dict[str, Any]) -> bool:
    return str(official.get("model_arch", "")).startswith("vlmo_")


def to_config(official: dict[str, Any], state: StateDict, files: OfficialFiles) -> OfficialMapping:
    mapping = OfficialMapping()
    state = {k.removeprefix(DEEPSPEED_PREFIX): v for k, v in state.items()}
    arch = official["model_arch"]
    if arch in OFFICIAL_ARCHS:
        for field, value in {**VLMO_PRESETS[OFFICIAL_ARCHS[arch]], **OFFICIAL_ARCH_FIXED}.items():
            mapping.map("model_arch", arch, field, value)
    else:
        mapping.lines.append(f"model_arch = {arch!r} is not an official architecture: its sizes come from the weights")
        for field, (value, weight, seen) in sizes_from_weights(state).items():
            mapping.map(f"weights: {weight}", seen, field, value)
    for key, ours in SCALAR_FIELDS.items():
        if key in official:
            mapping.map(key, official[key], ours, official[key])
    _map_tokenizer(official, files, mapping)
    _map_losses(official, mapping)
    return mapping


def sizes_from_weights(state: StateDict) -> dict[str, tuple[Any, str, Any]]:
    """field -> (value, the weight it was read from, what was read), for an architecture the official code
    does not register."""
    needed = (
        "transformer.cls_token",
        "transformer.patch_embed.proj.weight",
        "transformer.blocks.0.mlp_imag.fc1.weight",
    )
    absent = [key for key in needed if key not in state]
    if absent:
        raise ConfigError(f"the weights lack {absent[0]}: not a VLMo state dict, so its sizes cannot be read")
    blocks = {int(m.group(1)) for key in state if (m := _BLOCK.match(key))}
    with_vl = sorted({int(m.group(1)) for key in state if (m := _BLOCK.match(key)) and ".mlp_vl." in key})
    depth = max(blocks) + 1
    shape = {key: tuple(value.shape) for key, value in state.items()}
    width, fc1 = shape["transformer.cls_token"][-1], "transformer.blocks.0.mlp_imag.fc1.weight"
    sizes: dict[str, tuple[Any, str, Any]] = {
        "width": (width, "transformer.cls_token", shape["transformer.cls_token"]),
        "patch_size": (
            shape["transformer.patch_embed.proj.weight"][-1],
            "transformer.patch_embed.proj.weight",
            shape["transformer.patch_embed.proj.weight"],
        ),
        "depth": (depth, "transformer.blocks.N", f"N = 0..{depth - 1}"),
        "vlffn_start": (min(with_vl, default=depth), "transformer.blocks.N.mlp_vl", f"N in {with_vl}"),
        "mlp_ratio": (shape[fc1][0] / width, fc1, shape[fc1]),
        "layer_scale_init": (
            0.1 if "transformer.blocks.0.gamma_1" in state else None,
            "transformer.blocks.0.gamma_1",
            "present" if "transformer.blocks.0.gamma_1" in state else "absent",
        ),
    }
    table = shape.get("relative_position_bias_table")
    if table is None:
        raise ConfigError(
            "the number of attention heads of a VLMo without a relative position table cannot be read "
            "from its weights; name an official model_arch in its config"
        )
    sizes["relative_position"] = (True, "relative_position_bias_table", "present")
    sizes["num_heads"] = (table[1] // depth, "relative_position_bias_table", table)  # a column per layer and head
    return sizes


def _map_tokenizer(official: dict[str, Any], files: OfficialFiles, mapping: OfficialMapping) -> None:
    name = str(official.get("tokenizer", "bert-base-uncased"))
    folder = files.find("tokenizer", name)
    if folder is not None:
        if not (folder / "vocab.txt").is_file():
            raise ConfigError(
                f"tokenizer folder {folder} has no vocab.txt; pass a BERT vocabulary folder with --tokenizer PATH"
            )
        mapping.map("tokenizer", name, "tokenizer", str(folder))
    elif name in BUILTIN_VOCABS:
        mapping.map("tokenizer", name, "tokenizer", BUILTIN_VOCABS[name])
    else:
        raise files.missing("tokenizer", name, "a folder with the BERT vocab.txt")


def _map_losses(official: dict[str, Any], mapping: OfficialMapping) -> None:
    losses = {name: int(on) > 0 for name, on in official.get("loss_names", {}).items()}
    heads = [head for head in ("vqa", "nlvr2") if losses.get(head)]
    mapping.map("loss_names", {head: 1 for head in heads}, "task_heads", heads)
    if losses.get("vqa") and "vqav2_label_size" in official:
        mapping.map("vqav2_label_size", official["vqav2_label_size"], "vqa_answers", official["vqav2_label_size"])
    if losses.get("textmlm"):  # the official text-only stage builds no VL-FFN
        mapping.map("loss_names.textmlm", 1, "vlffn_start", mapping.config["depth"])
    built = {"mlm": losses.get("mlm") or losses.get("textmlm"), "itm": losses.get("itm"), "itc": losses.get("itc")}
    absent = [prefix for loss, on in built.items() if not on for prefix in HEADS_OF_LOSS[loss]]
    if not built["itc"] and losses.get("irtr"):  # retrieval fine-tuning builds one pair and one scale
        absent = [p for p in absent if p not in ("itc_text_proj.", "itc_image_proj.", "logit_scale")]
    if absent:
        mapping.absent_prefixes = tuple(absent)
        mapping.lines.append(
            f"loss_names leaves out {', '.join(p.rstrip('.') for p in absent)} -> those heads keep their initialisation"
        )
