"""The VLMo objectives: ``objective(model, batch) -> {name: loss}``, summed by the training loop.

They read the batches X²-VLM's collate functions make, under the same keys: ``image``,
``text_ids``, ``text_atts``, ``text_ids_masked``, ``masked_pos``, ``masked_ids`` (pre-training
and retrieval, with ``idx`` when captions share an image), ``question_ids`` /
``question_atts`` (VQA) and ``left`` / ``right`` / ``label`` (NLVR2).

As the official recipe:
- vision-language pre-training: ITC on both head pairs (V/L-FFN tops and VL-FFN tops, averaged),
  ITM with hard negatives drawn from the V/L similarities, MLM with the image, weighted 0.25;
- text-only pre-training: MLM with the L-FFN in every block;
- retrieval fine-tuning: ITC of the dual encoder (V/L-FFN tops) only;
- VQA: a classifier over the answer list, binary cross-entropy on soft scores times the list size;
- NLVR2: cross-entropy over the two fused image-wise CLS vectors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from x2vlm_core.errors import DataError
from x2vlm_core.families.vlmo.model import VLMo
from x2vlm_core.models import losses

MLM_WEIGHT = 0.25  # the official weight of MLM in vision-language pre-training


def image_text_losses(
    model: VLMo, batch: dict[str, torch.Tensor], with_itm: bool = True, mlm_weight: float = MLM_WEIGHT
) -> dict[str, torch.Tensor]:
    image_tokens = model.embed_image(batch["image"])
    image_atts = torch.ones(image_tokens.shape[:2], dtype=batch["text_atts"].dtype, device=image_tokens.device)
    text_tokens = model.embed_text(batch["text_ids"])
    image_feat, image_vl_feat = model.image_features(image_tokens, with_vl=True)
    text_feat, text_vl_feat = model.text_features(text_tokens, batch["text_atts"], with_vl=True)
    assert image_vl_feat is not None and text_vl_feat is not None  # with_vl=True
    out = {
        "itc": (
            losses.contrastive_loss(image_feat, text_feat, model.temperature)
            + losses.contrastive_loss(image_vl_feat, text_vl_feat, model.vl_temperature)
        )
        / 2
    }
    if with_itm:
        out["itm"] = matching_loss(model, image_tokens, image_feat, text_tokens, batch["text_atts"], text_feat)
    logits = model.mlm_logits(
        batch["text_ids_masked"], batch["text_atts"], batch["masked_pos"], image_tokens, image_atts
    )
    out["mlm"] = mlm_weight * losses.mlm_loss(logits, batch["masked_ids"])
    return out


def matching_loss(
    model: VLMo,
    image_tokens: torch.Tensor,
    image_feat: torch.Tensor,
    text_tokens: torch.Tensor,
    text_atts: torch.Tensor,
    text_feat: torch.Tensor,
    idx: torch.Tensor | None = None,
) -> torch.Tensor:
    """ITM on the fusion encoder: each positive pair, a hard-negative image per text and a hard-negative
    text per image, drawn from the V/L similarities as the official ITM does."""
    image_neg, text_neg = losses.sample_hard_negatives(
        image_feat, text_feat, model.temperature, idx, hard=losses.uses_hard_negatives(model)
    )
    images = torch.cat([image_tokens, image_tokens[image_neg], image_tokens])
    texts = torch.cat([text_tokens, text_tokens, text_tokens[text_neg]])
    atts = torch.cat([text_atts, text_atts, text_atts[text_neg]])
    image_atts = torch.ones(images.shape[:2], dtype=atts.dtype, device=atts.device)
    logits = model.itm_logits(images, image_atts, texts, atts)
    labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    labels[: image_tokens.shape[0]] = 1
    return F.cross_entropy(logits, labels)


def text_only_losses(model: VLMo, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The text-only stage: MLM without an image, through the L-FFN of every block."""
    logits = model.mlm_logits(batch["text_ids_masked"], batch["text_atts"], batch["masked_pos"])
    return {"text_mlm": losses.mlm_loss(logits, batch["masked_ids"])}


def retrieval_losses(model: VLMo, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Dual-encoder ITC; captions of one image (same ``idx``) are soft positives."""
    image_feat, _ = model.image_features(model.embed_image(batch["image"]))
    text_feat, _ = model.text_features(model.embed_text(batch["text_ids"]), batch["text_atts"])
    return {"itc": losses.contrastive_loss(image_feat, text_feat, model.temperature, idx=batch.get("idx"))}


def answer_targets(scores: list[dict[str, float]], answers: list[str]) -> torch.Tensor:
    """``[B, len(answers)]`` soft targets from each question's ``{answer: score}``.

    Answers outside the list get no column (the official targets drop them too).
    """
    column = {answer: i for i, answer in enumerate(answers)}
    targets = torch.zeros(len(scores), len(answers))
    for row, answer_scores in enumerate(scores):
        for answer, score in answer_scores.items():
            if answer in column:
                targets[row, column[answer]] = score
    return targets


def vqa_losses(model: VLMo, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    targets = batch["answer_targets"]
    if targets.shape[1] != model.config.vqa_answers:
        raise DataError(
            f"answer_targets have {targets.shape[1]} answers, the VQA head {model.config.vqa_answers}; "
            "build the head with vqa_answers set to the answer list's length"
        )
    logits = model.vqa_logits(
        model.embed_image(batch["image"]), model.embed_text(batch["question_ids"]), batch["question_atts"]
    )
    return {"vqa": F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype)) * targets.shape[1]}


def nlvr2_losses(model: VLMo, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    logits = model.nlvr2_logits(batch["left"], batch["right"], batch["text_ids"], batch["text_atts"])
    return {"nlvr2": F.cross_entropy(logits, batch["label"])}
