"""Turn decoded shard samples into model batches (image-text, region-text)."""

from __future__ import annotations

import math
import random
from typing import Any

import torch

from x2vlm_core.data.masking import MaskingConfig, mask_whole_words
from x2vlm_core.data.transforms import decode_image, image_to_tensor
from x2vlm_core.tokenization import build_tokenizer, pre_caption


class TextEncoder:
    """pre_caption + WordPiece, padded to the longest text of the batch."""

    def __init__(self, tokenizer: str, max_tokens: int) -> None:
        self.tokenizer = build_tokenizer(tokenizer)
        self.max_tokens = max_tokens

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[list[int | None]]]:
        clean = [pre_caption(t, self.max_tokens) for t in texts]
        enc = self.tokenizer(clean, padding="longest", truncation=True, max_length=self.max_tokens,
                             return_tensors="pt")
        word_ids = [enc.word_ids(i) for i in range(len(clean))]
        return enc["input_ids"], enc["attention_mask"], word_ids

    def masked(self, texts: list[str], masking: MaskingConfig, rng: random.Random) -> dict[str, torch.Tensor]:
        ids, atts, word_ids = self(texts)
        ids_masked, masked_pos, masked_ids = mask_whole_words(
            ids, word_ids, mask_token_id=self.tokenizer.mask_token_id, vocab_size=len(self.tokenizer),
            config=masking, rng=rng)
        return {"text_ids": ids, "text_atts": atts, "text_ids_masked": ids_masked,
                "masked_pos": masked_pos, "masked_ids": masked_ids}


def sample_images(samples: list[dict[str, Any]], image_res: int) -> torch.Tensor:
    return torch.stack([image_to_tensor(decode_image(s["images"][0], s["key"]), image_res) for s in samples])


def image_text_batch(samples: list[dict[str, Any]], text: TextEncoder, image_res: int,
                     masking: MaskingConfig, rng: random.Random) -> dict[str, torch.Tensor]:
    """One random caption per image, with MLM masks."""
    captions = [rng.choice(s["meta"]["captions"]) for s in samples]
    return {"image": sample_images(samples, image_res), **text.masked(captions, masking, rng)}


def patch_mask(box_xywh: list[float], width: float, height: float, grid: int) -> list[int]:
    """``1 + grid*grid`` keep-mask over the patches a box covers (slot 0 = pooled token, always on)."""
    x, y, w, h = box_xywh
    sx, sy = grid / width, grid / height  # pixel → patch units of the square-resized image
    x_min = min(math.floor(x * sx), grid - 1)
    x_max = max(x_min + 1, min(math.ceil((x + w) * sx), grid))
    y_min = min(math.floor(y * sy), grid - 1)
    y_max = max(y_min + 1, min(math.ceil((y + h) * sy), grid))
    mask = [0] * (1 + grid * grid)
    mask[0] = 1
    for row in range(y_min, y_max):
        for col in range(x_min, x_max):
            mask[1 + row * grid + col] = 1
    return mask


def normalized_cxcywh(box_xywh: list[float], width: float, height: float) -> list[float]:
    x, y, w, h = box_xywh
    return [(x + w / 2) / width, (y + h / 2) / height, w / width, h / height]


def region_batch(samples: list[dict[str, Any]], text: TextEncoder, image_res: int, grid: int,
                 max_regions: int, masking: MaskingConfig, rng: random.Random) -> dict[str, torch.Tensor]:
    """Up to ``max_regions`` region texts per image, plus its caption as a whole-image row.

    Each row carries the patch mask of its box, the box as (cx, cy, w, h) fractions,
    the index of its image in ``image`` and ``is_image`` (1 for whole-image captions).
    """
    texts, atts, boxes, groups, is_image = [], [], [], [], []
    for index, sample in enumerate(samples):
        meta = sample["meta"]
        width, height = meta["width"], meta["height"]
        regions = list(meta.get("regions", []))
        rng.shuffle(regions)
        for region in regions[:max_regions]:
            texts.append(region["caption"])
            atts.append(patch_mask(region["bbox"], width, height, grid))
            boxes.append(normalized_cxcywh(region["bbox"], width, height))
            groups.append(index)
            is_image.append(0)
        if meta.get("captions"):
            texts.append(rng.choice(meta["captions"]))
            atts.append([1] * (1 + grid * grid))
            boxes.append([0.5, 0.5, 1.0, 1.0])
            groups.append(index)
            is_image.append(1)
    return {
        "image": sample_images(samples, image_res),
        "image_atts": torch.tensor(atts, dtype=torch.long),
        "idx_to_group_img": torch.tensor(groups, dtype=torch.long),
        "target_bbox": torch.tensor(boxes, dtype=torch.float32),
        "is_image": torch.tensor(is_image, dtype=torch.long),
        **text.masked(texts, masking, rng),
    }
