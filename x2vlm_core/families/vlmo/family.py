"""VLMo: one multiway transformer with shared self-attention and image, text and vision-language
experts (mixture-of-modality-experts), as microsoft/unilm's ``vlmo`` builds it; staged
pre-training, and its own retrieval, VQA and NLVR2 recipes."""

from __future__ import annotations

from typing import Any

from x2vlm_core.config_io import from_dict
from x2vlm_core.data.collate import TextEncoder
from x2vlm_core.families.spec import ModelFamily, OfficialFormat
from x2vlm_core.families.vlmo import official
from x2vlm_core.families.vlmo.checkpoint import adapt_official_state
from x2vlm_core.families.vlmo.config import FAMILY as NAME
from x2vlm_core.families.vlmo.config import VLMO_PRESETS, VLMoConfig
from x2vlm_core.families.vlmo.model import VLMo
from x2vlm_core.families.vlmo.pretrain import RECIPE
from x2vlm_core.families.vlmo.reference_outputs import reference_outputs
from x2vlm_core.families.vlmo.tasks import REFUSALS, TASKS
from x2vlm_core.text.wordpiece import save_wordpiece_vocab


def describe(config: VLMoConfig) -> str:
    return (
        f"A VLMo vision-language model (`{config.name}`): one multiway transformer of {config.depth} blocks "
        f"(width {config.width}) with shared self-attention, image and text experts in every block and "
        f"vision-language experts from block {config.vlffn_start}; a dual encoder for retrieval and a "
        "fusion encoder for matching."
    )


def wordpiece(config: Any, max_tokens: int | None) -> TextEncoder:
    return TextEncoder(config.tokenizer, max_tokens or config.max_tokens)


FAMILY = ModelFamily(
    name=NAME,
    title="VLMo",
    config_class=VLMoConfig,
    model_class=VLMo,
    presets=VLMO_PRESETS,
    tasks=TASKS,
    refusals=REFUSALS,
    pretrain=RECIPE,
    text_encoder=wordpiece,
    save_tokenizer=save_wordpiece_vocab,
    describe=describe,
    languages="English",
    build_config=lambda data, where: from_dict(VLMoConfig, data, where=where),
    adapt_checkpoint=adapt_official_state,
    finetune_head_prefixes=lambda model: VLMo.new_head_prefixes,  # its VQA / NLVR2 classifiers
    official=OfficialFormat(official.recognises, official.to_config, reference_outputs),
)
