"""Pre-training step speed of a preset, with its FLOP count and MFU, on CPU or GPU.

    python benchmarks/train_step.py --device cpu --precision fp32 --preset x2vlm_tiny --batch-sizes 8 16
    python benchmarks/train_step.py --device cuda --precision bf16 --batch-sizes 32 64 128 \
        --fixture ../shared/fixtures/x2vlm_official_tiny

Each step: the full pre-training loss (ITC, ITM with hard negatives, MLM on the image-text
batch; the same plus box losses on a region batch of as many texts over batch/4 images),
backward, and an AdamW step, on random inputs at the preset's resolution, 40 tokens; plain
torch, one device. Forward+backward and the optimizer step are timed apart.

FLOPs come from ``x2vlm_core.models.flops`` (matmul FLOPs of the model's actual shapes,
forward + backward). MFU = FLOPs per step / step time / peak: ``--peak-tflops`` gives the
peak; on an H100 SXM or H200 in bf16 it defaults to 989 TFLOP/s (dense), elsewhere MFU is
only printed when a peak is given. tokens/s counts what the encoders read per step: every
image's patch tokens (and its pooled token) plus every text's tokens.
"""

from __future__ import annotations

import argparse
import time

import torch
from record import append_entry, command_line

from x2vlm_core.families import create_model
from x2vlm_core.models.compile import compile_encoders
from x2vlm_core.models.flops import StepShapes, image_tokens, pretraining_step_flops
from x2vlm_core.train.pretrain_objective import pretraining_losses

TOKENS, MASKS = 40, 12
# Dense bf16 tensor-core peaks, TFLOP/s, by a part of torch.cuda.get_device_name().
BF16_PEAK_TFLOPS = {"H100 80GB HBM3": 989.0, "H200": 989.0}


def random_batches(batch: int, cfg, device):
    grid = cfg.num_patches_side
    vocab = cfg.text.vocab_size
    first = 1000 if vocab > 2000 else 1  # past BERT's special and unused tokens, in a full vocabulary
    text = {
        "text_ids": torch.randint(first, vocab, (batch, TOKENS), device=device),
        "text_atts": torch.ones(batch, TOKENS, dtype=torch.long, device=device),
        "text_ids_masked": torch.randint(first, vocab, (batch, TOKENS), device=device),
        "masked_pos": torch.randint(1, TOKENS, (batch, MASKS), device=device),
        "masked_ids": torch.randint(first, vocab, (batch, MASKS), device=device),
    }
    image_batch = {"image": torch.randn(batch, 3, cfg.image_res, cfg.image_res, device=device), **text}
    atts = torch.zeros(batch, 1 + grid * grid, dtype=torch.long, device=device)
    atts[:, : 1 + grid * grid // 4] = 1
    images = max(batch // 4, 1)
    region_batch = {
        "image": torch.randn(images, 3, cfg.image_res, cfg.image_res, device=device),
        "image_atts": atts,
        "idx_to_group_img": torch.arange(batch, device=device) * images // batch,
        "target_bbox": torch.full((batch, 4), 0.4, device=device),
        "is_image": torch.zeros(batch, dtype=torch.long, device=device),
        **text,
    }
    return image_batch, region_batch


def step_shapes(image_batch, region_batch) -> StepShapes:
    return StepShapes(
        batch=image_batch["text_ids"].shape[0],
        text_len=image_batch["text_ids"].shape[1],
        masked_tokens=image_batch["masked_pos"].shape[1],
        region_texts=region_batch["text_ids"].shape[0],
        region_images=region_batch["image"].shape[0],
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(model, batches, device: torch.device, precision: str, steps: int, warmup: int):
    """Seconds per step: (forward + backward, optimizer step)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    fwd_bwd = opt_time = 0.0
    for i in range(warmup + steps):
        _sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=precision == "bf16"):
            loss = sum(pretraining_losses(model, *batches).values())
        loss.backward()
        _sync(device)
        t1 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        if i >= warmup:
            fwd_bwd += t1 - t0
            opt_time += time.perf_counter() - t1
    return fwd_bwd / steps, opt_time / steps


def default_peak_tflops(device: torch.device, precision: str) -> float | None:
    if device.type != "cuda" or precision != "bf16":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for part, peak in BF16_PEAK_TFLOPS.items() if part in name), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--preset", default="x2vlm_base")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--peak-tflops",
        type=float,
        help="the device's peak TFLOP/s at this precision, for MFU "
        "(default: 989 on an H100 SXM / H200 in bf16, none elsewhere)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="compile the encoders' blocks (x2vlm_core.models.compile); warm-up steps include it",
    )
    parser.add_argument("--fixture", help="x2vlm_official_tiny folder: also report parity per output")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to docs/benchmarks.md")
    args = parser.parse_args()
    device = torch.device(args.device)
    peak = args.peak_tflops or default_peak_tflops(device, args.precision)

    lines = []

    def emit(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    emit(f"device: {name}; torch {torch.__version__}; peak {f'{peak:g} TFLOP/s' if peak else 'not given'}")
    if args.fixture:
        from x2vlm_core.parity import max_abs_diffs

        diffs = max_abs_diffs(args.fixture, device)
        worst = max(diffs, key=diffs.get)
        emit(
            f"parity vs official reference (fp32 on {device}): {len(diffs)} outputs, "
            f"max abs diff {diffs[worst]:.2e} ({worst})"
        )
    emit(
        "| preset | precision | compiled | batch | forward+backward s | optimizer s | image-text pairs/s "
        "| tokens/s | TFLOP/step | TFLOP/s | MFU |"
    )
    emit("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for batch in args.batch_sizes:
        torch.manual_seed(0)
        model = create_model(args.preset).to(device)
        if args.compile:
            compile_encoders(model)
        batches = random_batches(batch, model.config, device)
        shapes = step_shapes(*batches)
        flops = pretraining_step_flops(model.config, shapes)
        tokens = (shapes.batch + shapes.region_images) * image_tokens(model.config) + (
            shapes.batch + shapes.region_texts
        ) * shapes.text_len
        fb, op = time_steps(model, batches, device, args.precision, args.steps, args.warmup)
        step = fb + op
        mfu = f"{100 * flops.mfu(step, peak):.1f}%" if peak else "n/a"
        emit(
            f"| {args.preset} | {args.precision} | {'yes' if args.compile else 'no'} | {batch} | {fb:.3f} | {op:.3f} "
            f"| {batch / step:.1f} | {tokens / step:,.0f} | {flops.total / 1e12:.3g} "
            f"| {flops.total / step / 1e12:.3g} | {mfu} |"
        )
        del model, batches
    if not args.no_record:
        append_entry(
            f"pre-training step throughput and MFU, {args.preset}, {args.precision}, {device.type}",
            command_line(),
            "\n".join(lines),
            notes=[
                f"{args.warmup} warm-up and {args.steps} timed steps per batch size; one step = the "
                "image-text batch + a region batch of as many texts over batch/4 images, 40 tokens."
            ],
        )


if __name__ == "__main__":
    main()
