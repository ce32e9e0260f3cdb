"""X²-VLM: a BEiT-2 image encoder and one BERT stack whose top layers cross-attend to the image
(the official ``XVLMBase`` layout), with ITC, ITM, MLM and box heads."""

from __future__ import annotations

from typing import Any

from x2vlm_core.config_io import from_dict
from x2vlm_core.data.collate import TextEncoder
from x2vlm_core.families.spec import ModelFamily, OfficialFormat
from x2vlm_core.families.x2vlm import official
from x2vlm_core.families.x2vlm.model import XVLM
from x2vlm_core.families.x2vlm.presets import PRESETS
from x2vlm_core.families.x2vlm.pretrain import RECIPE
from x2vlm_core.families.x2vlm.reference_outputs import reference_outputs
from x2vlm_core.models.config import ModelConfig
from x2vlm_core.release.model_folder import fit_image_resolution
from x2vlm_core.tasks import TASKS
from x2vlm_core.text.wordpiece import save_wordpiece_vocab


def describe(config: ModelConfig) -> str:
    vision, text = config.vision, config.text
    return (
        f"An X²-VLM vision-language model (`{config.name}`): a BEiT-2 image encoder ({vision.depth} blocks, "
        f"width {vision.width}) and one BERT stack of {text.fusion_start_at} text layers and "
        f"{text.num_layers - text.fusion_start_at} fusion layers (width {text.hidden_size}) that "
        "cross-attend to the image."
    )


def wordpiece(config: Any, max_tokens: int | None) -> TextEncoder:
    return TextEncoder(config.tokenizer, max_tokens or config.max_tokens)


FAMILY = ModelFamily(
    name="x2vlm",
    title="X²-VLM",
    config_class=ModelConfig,
    model_class=XVLM,
    presets=PRESETS,
    tasks=dict(TASKS),
    refusals={},
    pretrain=RECIPE,
    text_encoder=wordpiece,
    save_tokenizer=save_wordpiece_vocab,
    describe=describe,
    languages="English",
    build_config=lambda data, where: from_dict(ModelConfig, data, where=where),
    adapt_checkpoint=fit_image_resolution,
    official=OfficialFormat(official.recognises, official.to_config, reference_outputs),
)
