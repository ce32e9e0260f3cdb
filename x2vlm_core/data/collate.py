"""Turn decoded shard samples into model batches (image-text, region-text, video-text, text-only).

The ``pretrain_*`` builders augment: every sample carries a ``seed`` (set by the shard
stream from its position in the data), and all of its random choices (caption, crop, flip,
RandAugment, frames, MLM masks) come from that seed, so a sample is processed the same
way on any rank, DataLoader worker or resumed run. Their ``image`` is uint8 pixels, which
``streaming.to_device`` normalises on the training device.
"""

from __future__ import annotations

import math
import random
import zlib
from typing import Any

import torch

from x2vlm_core.data.augment import COLOUR_OPERATIONS, AugmentConfig, augment_crop, crop_corners, rand_augment
from x2vlm_core.data.masking import MaskingConfig, mask_whole_words
from x2vlm_core.data.region_sampler import exact_size_selection, sample_regions
from x2vlm_core.data.transforms import (
    decode_for_crop,
    decode_image,
    image_to_tensor,
    image_to_uint8,
    open_image,
    square_uint8,
)
from x2vlm_core.errors import DataError
from x2vlm_core.text.wordpiece import build_tokenizer, pre_caption


class TextEncoder:
    """pre_caption + WordPiece, padded to the longest text of the batch."""

    def __init__(self, tokenizer: str, max_tokens: int) -> None:
        self.tokenizer = build_tokenizer(tokenizer)
        self.max_tokens = max_tokens

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, list[list[int | None]]]:
        clean = [pre_caption(t, self.max_tokens) for t in texts]
        enc = self.tokenizer(clean, padding="longest", truncation=True, max_length=self.max_tokens, return_tensors="pt")
        word_ids = [enc.word_ids(i) for i in range(len(clean))]
        return enc["input_ids"], enc["attention_mask"], word_ids

    def masked(
        self, texts: list[str], masking: MaskingConfig, rng: random.Random | list[random.Random]
    ) -> dict[str, torch.Tensor]:
        ids, atts, word_ids = self(texts)
        ids_masked, masked_pos, masked_ids = mask_whole_words(
            ids,
            word_ids,
            mask_token_id=self.tokenizer.mask_token_id,
            vocab_size=len(self.tokenizer),
            config=masking,
            rng=rng,
        )
        return {
            "text_ids": ids,
            "text_atts": atts,
            "text_ids_masked": ids_masked,
            "masked_pos": masked_pos,
            "masked_ids": masked_ids,
        }


def positive_ids(images: list[Any], texts: list[str], max_tokens: int) -> torch.Tensor:
    """An id per row; rows with one id are positives of each other in ITC and never ITM negatives.

    Rows of one image are positives, and so are rows whose texts read the same (pre_caption at
    ``max_tokens``): otherwise two images captioned "a red square" are each other's hardest
    negatives and ITM learns a contradiction. A group's id hashes its smallest text, so the same
    text gets the same id on every rank of a gathered batch.
    """
    read = [pre_caption(text, max_tokens) for text in texts]
    parent = list(range(len(read)))

    def root(row: int) -> int:
        while parent[row] != row:
            parent[row] = parent[parent[row]]
            row = parent[row]
        return row

    first: dict[tuple[str, Any], int] = {}
    for row, key in enumerate(zip(images, read)):
        for shared in (("image", key[0]), ("text", key[1])):
            if shared in first:
                parent[root(row)] = root(first[shared])
            else:
                first[shared] = row
    name: dict[int, str] = {}
    for row, text in enumerate(read):
        name[root(row)] = min(name.get(root(row), text), text)
    return torch.tensor([zlib.crc32(name[root(row)].encode()) for row in range(len(read))], dtype=torch.long)


def sample_images(samples: list[dict[str, Any]], image_res: int) -> torch.Tensor:
    return torch.stack([image_to_tensor(decode_image(s["images"][0], s["key"]), image_res) for s in samples])


def image_text_batch(
    samples: list[dict[str, Any]], text: TextEncoder, image_res: int, masking: MaskingConfig, rng: random.Random
) -> dict[str, torch.Tensor]:
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


def sample_rng(sample: dict[str, Any], purpose: str = "") -> random.Random:
    """The generator of one sample's random choices, from the seed its stream gave it."""
    return random.Random(f"{sample.get('seed', sample['key'])}{purpose}")


def _captions(sample: dict[str, Any]) -> list[str]:
    meta = sample["meta"]
    captions = meta.get("captions") or meta.get("caption") or []
    captions = [captions] if isinstance(captions, str) else list(captions)
    if not captions:
        raise DataError(f"sample {sample['key']}: no caption in its json; re-run prepare-data for this dataset")
    return captions


def augmented_pixels(
    data: bytes, key: str, texts: list[str], image_res: int, rng: random.Random, augment: AugmentConfig
) -> torch.Tensor:
    """uint8 ``[3, R, R]`` of ``augment_image``; the crop is drawn on the stored size before any pixel is decoded,
    so a large JPEG decodes only as finely as the crop needs."""
    image = open_image(data, key)
    box: tuple[float, float, float, float] = crop_corners(image.width, image.height, rng, augment)
    image, box = decode_for_crop(image, box, image_res, key)
    return image_to_uint8(augment_crop(image, box, texts, image_res, rng, augment))


def pretrain_image_text_batch(
    samples: list[dict[str, Any]], text: TextEncoder, image_res: int, masking: MaskingConfig, augment: AugmentConfig
) -> dict[str, torch.Tensor]:
    """One random caption per image; the image cropped, flipped and RandAugmented; MLM masks."""
    rngs = [sample_rng(s) for s in samples]
    captions = [rng.choice(_captions(s)) for s, rng in zip(samples, rngs)]
    images = [
        augmented_pixels(s["images"][0], s["key"], [caption], image_res, rng, augment)
        for s, caption, rng in zip(samples, captions, rngs)
    ]
    return {
        "image": torch.stack(images),
        "idx": positive_ids([s["key"] for s in samples], captions, text.max_tokens),
        **text.masked(captions, masking, rngs),
    }


def sample_frame_indices(total: int, count: int, rng: random.Random) -> list[int]:
    """Training frame sampling: one random frame from each of ``count`` near-equal segments.

    Clips with fewer frames than ``count`` keep all of theirs plus random repeats, in order.
    """
    if total <= count:
        return sorted(list(range(total)) + [rng.randrange(total) for _ in range(count - total)])
    base, longer = divmod(total, count)
    lengths = [base + 1] * longer + [base] * (count - longer)
    rng.shuffle(lengths)
    indices, start = [], 0
    for length in lengths:
        indices.append(start + rng.randrange(length))
        start += length
    return indices


def pretrain_video_text_batch(
    samples: list[dict[str, Any]],
    text: TextEncoder,
    image_res: int,
    frame_len: int,
    masking: MaskingConfig,
    augment: AugmentConfig,
) -> dict[str, torch.Tensor]:
    """Clips as ``image`` [B, frame_len, 3, H, W]: sampled frames, each augmented like an image."""
    rngs = [sample_rng(s) for s in samples]
    captions = [rng.choice(_captions(s)) for s, rng in zip(samples, rngs)]
    clips = []
    for sample, caption, rng in zip(samples, captions, rngs):
        frames = sample["images"]
        chosen = sample_frame_indices(len(frames), frame_len, rng)
        clips.append(
            torch.stack(
                [augmented_pixels(frames[i], sample["key"], [caption], image_res, rng, augment) for i in chosen]
            )
        )
    return {"image": torch.stack(clips), **text.masked(captions, masking, rngs)}


def pretrain_region_batch(
    samples: list[dict[str, Any]],
    text: TextEncoder,
    image_res: int,
    grid: int,
    max_regions: int,
    batch_size: int,
    masking: MaskingConfig,
    augment: AugmentConfig,
) -> dict[str, torch.Tensor]:
    """Exactly ``batch_size`` region texts over the images of ``samples`` (see region_sampler).

    Each row carries the patch mask of its box, the box as (cx, cy, w, h) fractions, the
    index of its image in ``image`` (``idx_to_group_img``) and ``is_image`` (1 for
    whole-image captions, which have no box loss).
    """
    images, rows, seeds = [], [], []
    for sample in samples:
        rng = sample_rng(sample)
        image, sample_rows = sample_regions(
            decode_image(sample["images"][0], sample["key"]),
            sample["meta"],
            image_res,
            max_regions,
            augment.min_visible,
            augment.flip,
            rng,
        )
        if sample_rows:
            image = rand_augment(image, rng, augment.randaug_ops, augment.randaug_magnitude, COLOUR_OPERATIONS)
            images.append(square_uint8(image, image_res))
            rows.append(sample_rows)
            seeds.append(sample.get("seed", sample["key"]))
    if not images:
        keys = ", ".join(s["key"] for s in samples[:3])
        raise DataError(
            f"region batch of {len(samples)} images ({keys}, ...) has no region inside its images; "
            "check the region dataset's boxes"
        )
    selected = exact_size_selection([len(r) for r in rows], batch_size, random.Random("|".join(seeds)))
    chosen = [rows[image][row] for image, row in selected]
    full = [1] * (1 + grid * grid)
    return {
        "image": torch.stack(images),
        "image_atts": torch.tensor(
            [full if r.is_image else patch_mask(list(r.box), image_res, image_res, grid) for r in chosen],
            dtype=torch.long,
        ),
        "idx_to_group_img": torch.tensor([image for image, _ in selected], dtype=torch.long),
        "target_bbox": torch.tensor(
            [normalized_cxcywh(list(r.box), image_res, image_res) for r in chosen], dtype=torch.float32
        ),
        "is_image": torch.tensor([int(r.is_image) for r in chosen], dtype=torch.long),
        # One id per distinct text as the model reads it (pre_caption at max_tokens): the same phrase twice
        # in a batch ("red square" in two images, or a row repeated to fill the exact size) is a positive
        # of both regions, never a hard negative.
        "idx": torch.tensor(
            [zlib.crc32(pre_caption(r.text, text.max_tokens).encode()) for r in chosen], dtype=torch.long
        ),
        **text.masked(
            [r.text for r in chosen], masking, [random.Random(f"{seeds[image]}:mask:{row}") for image, row in selected]
        ),
    }


def sample_texts(sample: dict[str, Any]) -> list[str]:
    """The texts a text-only objective may read from a record: a sentence pair's two sides, or the captions."""
    meta = sample["meta"]
    pair = [
        meta[name] for name in ("source_text", "target_text") if isinstance(meta.get(name), str) and meta[name].strip()
    ]
    return pair or _captions(sample)


def pretrain_text_batch(
    samples: list[dict[str, Any]], text: TextEncoder, masking: MaskingConfig
) -> dict[str, torch.Tensor]:
    """Text-only MLM: one text per record (a side of a sentence pair, or a caption; images unread), masked."""
    rngs = [sample_rng(s) for s in samples]
    return text.masked([rng.choice(sample_texts(s)) for s, rng in zip(samples, rngs)], masking, rngs)
