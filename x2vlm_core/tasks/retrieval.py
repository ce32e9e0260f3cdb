"""Image-text retrieval (COCO / Flickr30K): fine-tune with ITC + ITM, evaluate by ITC top-k → ITM re-rank."""

from __future__ import annotations

import random
import zlib
from typing import Any

import numpy as np
import torch

from x2vlm_core.data.collate import TextEncoder, sample_images
from x2vlm_core.metrics import retrieval_recall
from x2vlm_core.models import losses
from x2vlm_core.models.xvlm import XVLM

DATASET = "retrieval"
TRAIN_SPLIT = "train"
EVAL_SPLITS = ("test",)


def image_index(key: str) -> int:
    """A stable integer per image, so captions of one image are positives of each other."""
    return zlib.crc32(key.encode())


def train_collate(samples: list[dict[str, Any]], text: TextEncoder, image_res: int,
                  rng: random.Random) -> dict[str, torch.Tensor]:
    ids, atts, _ = text([rng.choice(s["meta"]["captions"]) for s in samples])
    return {"image": sample_images(samples, image_res), "text_ids": ids, "text_atts": atts,
            "idx": torch.tensor([image_index(s["key"]) for s in samples], dtype=torch.long)}


def objective(model: XVLM, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    image_embeds, image_atts = model.get_vision_embeds(batch["image"])
    text_embeds = model.get_text_embeds(batch["text_ids"], batch["text_atts"])
    image_feat, text_feat = model.get_image_feat(image_embeds), model.get_text_feat(text_embeds)
    return {
        "itc": losses.contrastive_loss(image_feat, text_feat, model.temp, idx=batch["idx"]),
        "itm": losses.matching_loss(model, image_embeds, image_atts, image_feat, text_embeds,
                                    batch["text_atts"], text_feat, idx=batch["idx"]),
    }


@torch.no_grad()
def evaluate(model: XVLM, samples: list[dict[str, Any]], text: TextEncoder, k_test: int = 256,
             batch_size: int = 64) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """ITC similarity picks the top ``k_test`` candidates; the ITM head re-ranks them."""
    model.eval()
    image_res = model.config.image_res
    texts, txt2img, img2txt = [], [], []
    for i, sample in enumerate(samples):
        img2txt.append(list(range(len(texts), len(texts) + len(sample["meta"]["captions"]))))
        texts.extend(sample["meta"]["captions"])
        txt2img.extend([i] * len(sample["meta"]["captions"]))

    image_embeds = torch.cat([model.get_vision_embeds(sample_images(samples[i:i + batch_size], image_res))[0]
                              for i in range(0, len(samples), batch_size)])
    text_ids, text_atts, _ = text(texts)
    text_embeds = torch.cat([model.get_text_embeds(text_ids[i:i + batch_size], text_atts[i:i + batch_size])
                             for i in range(0, len(texts), batch_size)])
    sims = model.get_image_feat(image_embeds) @ model.get_text_feat(text_embeds).t()
    image_atts = torch.ones(image_embeds.shape[:2], dtype=torch.long)

    def rerank(query_sims: torch.Tensor, pair) -> torch.Tensor:
        scores = torch.full_like(query_sims, -100.0)
        k = min(k_test, query_sims.shape[1])
        for q, row in enumerate(query_sims):
            top = row.topk(k).indices
            scores[q, top] = pair(q, top)
        return scores

    def i2t(q: int, top: torch.Tensor) -> torch.Tensor:
        n = len(top)
        return model.itm_logits(image_embeds[q].expand(n, -1, -1), image_atts[q].expand(n, -1),
                                text_embeds[top], text_atts[top])[:, 1]

    def t2i(q: int, top: torch.Tensor) -> torch.Tensor:
        n = len(top)
        return model.itm_logits(image_embeds[top], image_atts[top], text_embeds[q].expand(n, -1, -1),
                                text_atts[q].expand(n, -1))[:, 1]

    scores_i2t = rerank(sims, i2t).numpy()
    scores_t2i = rerank(sims.t(), t2i).numpy()
    metrics = retrieval_recall(scores_i2t, scores_t2i, txt2img, img2txt)
    predictions = [{"image_key": samples[i]["key"], "top5_texts": [texts[t] for t in np.argsort(-scores_i2t[i])[:5]],
                    "true_texts": [texts[t] for t in img2txt[i]]} for i in range(len(samples))]
    return metrics, predictions
