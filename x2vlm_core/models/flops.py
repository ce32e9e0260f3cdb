"""Matmul FLOPs of an X²-VLM pre-training step, derived from the model's shapes.

Counts what dominates the step and what hardware peaks are quoted for: every matrix
product (linear layers, attention scores and values, the patch-embedding convolution),
at 2 FLOPs per multiply-add. Norms, activations, softmax, gathers and losses are left
out, as ``torch.utils.flop_counter.FlopCounterMode`` leaves them out.

Forward + backward costs 3x a product's forward FLOPs (one for the output, one for each
of the input and weight gradients), with two exceptions that the code follows exactly:
the patch embedding's input is the image, which needs no gradient (2x), and the
similarity that samples ITM hard negatives runs without gradients (1x).

MFU = ``step_flops / step_seconds / peak_flops``, so the training logs can report it
from the same function the benchmarks use.
"""

from __future__ import annotations

from dataclasses import dataclass

from x2vlm_core.models.config import ModelConfig, TextConfig


def linear(tokens: int, fan_in: int, fan_out: int) -> int:
    return 2 * tokens * fan_in * fan_out


def attention(queries: int, keys: int, width: int) -> int:
    """Scores (Q·Kᵀ) and weighted values (P·V), summed over heads."""
    return 2 * 2 * queries * keys * width


def head_mlp(rows: int, width: int, out: int) -> int:
    """The ITM / box head: Linear(d, 2d) → LayerNorm → GELU → Linear(2d, out)."""
    return linear(rows, width, 2 * width) + linear(rows, 2 * width, out)


def image_tokens(cfg: ModelConfig) -> int:
    """Tokens the vision encoder hands to the fusion layers: pooled token + patches."""
    return 1 + cfg.num_patches_side**2


def patch_embed_flops(cfg: ModelConfig, images: int) -> int:
    v = cfg.vision
    return linear(images * cfg.num_patches_side**2, 3 * v.patch_size**2, v.width)


def vision_blocks_flops(cfg: ModelConfig, images: int) -> int:
    v = cfg.vision
    n, d, hidden = image_tokens(cfg), v.width, int(v.width * v.mlp_ratio)
    per_block = linear(n, d, 3 * d) + attention(n, n, d) + linear(n, d, d) + linear(n, d, hidden) + linear(n, hidden, d)
    return images * v.depth * per_block


def _self_attention_and_ffn(t: TextConfig, length: int) -> int:
    h = t.hidden_size
    return (
        4 * linear(length, h, h)
        + attention(length, length, h)
        + linear(length, h, t.intermediate_size)
        + linear(length, t.intermediate_size, h)
    )


def text_layers_flops(cfg: ModelConfig, texts: int, length: int) -> int:
    """The layers below ``fusion_start_at``: text alone."""
    t = cfg.text
    return texts * t.fusion_start_at * _self_attention_and_ffn(t, length)


def fusion_layers_flops(cfg: ModelConfig, pairs: int, length: int) -> int:
    """The layers from ``fusion_start_at`` on, with cross-attention to the image tokens."""
    t, n = cfg.text, image_tokens(cfg)
    h = t.hidden_size
    cross = linear(length, h, h) + 2 * linear(n, cfg.vision.width, h) + attention(length, n, h) + linear(length, h, h)
    return pairs * (t.num_layers - t.fusion_start_at) * (_self_attention_and_ffn(t, length) + cross)


def mlm_head_flops(cfg: ModelConfig, positions: int) -> int:
    h = cfg.text.hidden_size
    return linear(positions, h, h) + linear(positions, h, cfg.text.vocab_size)


@dataclass(frozen=True)
class StepShapes:
    """One pre-training step: an image-text batch and a region batch (``region_texts`` 0: none)."""

    batch: int
    text_len: int
    masked_tokens: int
    region_texts: int = 0
    region_images: int = 0
    with_itm: bool = True


@dataclass(frozen=True)
class StepFlops:
    forward: int
    total: int  # forward + backward

    def mfu(self, seconds: float, peak_tflops: float) -> float:
        return self.total / seconds / (peak_tflops * 1e12)


def _alignment(cfg: ModelConfig, texts: int, length: int, masked: int, with_itm: bool) -> tuple[int, int]:
    """(with-gradient forward FLOPs, no-gradient FLOPs) of ITC + ITM + MLM over ``texts`` pairs."""
    e = cfg.embed_dim
    itc = linear(texts, cfg.vision.width, e) + linear(texts, cfg.text.hidden_size, e) + linear(texts, e, texts)
    grad = itc + text_layers_flops(cfg, texts, length)  # the MLM pass re-encodes the masked text
    grad += fusion_layers_flops(cfg, texts, length) + mlm_head_flops(cfg, texts * masked)
    no_grad = 0
    if with_itm:  # the positive pair, a hard-negative image and a hard-negative text per sample
        grad += fusion_layers_flops(cfg, 3 * texts, length) + head_mlp(3 * texts, cfg.text.hidden_size, 2)
        no_grad = linear(texts, e, texts)
    return grad, no_grad


def pretraining_step_flops(cfg: ModelConfig, shapes: StepShapes) -> StepFlops:
    """FLOPs of ``pretraining_losses`` (the image-text and the region batch) forward and backward."""
    s = shapes
    images = s.batch + s.region_images
    grad = vision_blocks_flops(cfg, images) + text_layers_flops(cfg, s.batch, s.text_len)
    embed = patch_embed_flops(cfg, images)
    align, no_grad = _alignment(cfg, s.batch, s.text_len, s.masked_tokens, s.with_itm)
    grad += align
    if s.region_texts:
        grad += text_layers_flops(cfg, s.region_texts, s.text_len)
        align, region_no_grad = _alignment(cfg, s.region_texts, s.text_len, s.masked_tokens, s.with_itm)
        grad += align + fusion_layers_flops(cfg, s.region_texts, s.text_len)  # boxes from the whole image
        grad += head_mlp(s.region_texts, cfg.text.hidden_size, 4)
        no_grad += region_no_grad
    return StepFlops(forward=grad + embed + no_grad, total=3 * grad + 2 * embed + no_grad)
