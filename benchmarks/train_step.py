"""Pre-training step speed of a preset, and parity with the official code, on CPU or GPU.

    python benchmarks/train_step.py --device cpu --precision fp32 --batch-sizes 4
    python benchmarks/train_step.py --device cuda --precision bf16 --batch-sizes 32 64 \
        --fixture ../shared/fixtures/x2vlm_official_tiny

Each step: the full pre-training loss (ITC, ITM with hard negatives, MLM on the image-text
batch; the same plus box losses on a region batch of as many texts over batch/4 images),
backward, and an AdamW step, on random inputs at the preset's resolution, 40 tokens; plain
torch, one device. Forward+backward and the optimizer step are timed apart.
"""

import argparse
import platform
import time

import torch

from x2vlm_core.models.registry import create_model
from x2vlm_core.train.pretrain_objective import pretraining_losses

TOKENS, MASKS = 40, 12


def random_batches(batch: int, cfg, device):
    grid = cfg.num_patches_side
    vocab = cfg.text.vocab_size
    text = {"text_ids": torch.randint(1000, vocab, (batch, TOKENS), device=device),
            "text_atts": torch.ones(batch, TOKENS, dtype=torch.long, device=device),
            "text_ids_masked": torch.randint(1000, vocab, (batch, TOKENS), device=device),
            "masked_pos": torch.randint(1, TOKENS, (batch, MASKS), device=device),
            "masked_ids": torch.randint(1000, vocab, (batch, MASKS), device=device)}
    image_batch = {"image": torch.randn(batch, 3, cfg.image_res, cfg.image_res, device=device), **text}
    atts = torch.zeros(batch, 1 + grid * grid, dtype=torch.long, device=device)
    atts[:, : 1 + grid * grid // 4] = 1
    images = max(batch // 4, 1)
    region_batch = {"image": torch.randn(images, 3, cfg.image_res, cfg.image_res, device=device),
                    "image_atts": atts, "idx_to_group_img": torch.arange(batch, device=device) * images // batch,
                    "target_bbox": torch.full((batch, 4), 0.4, device=device),
                    "is_image": torch.zeros(batch, dtype=torch.long, device=device), **text}
    return image_batch, region_batch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(preset: str, batch: int, device: torch.device, precision: str, steps: int, warmup: int):
    """Seconds per step: (forward + backward, optimizer step)."""
    model = create_model(preset).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
    batches = random_batches(batch, model.config, device)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--preset", default="x2vlm_base")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--fixture", help="x2vlm_official_tiny folder: also report parity per output")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"{platform.processor() or 'cpu'}, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; python {platform.python_version()}")
    if args.fixture:
        from x2vlm_core.parity import max_abs_diffs

        diffs = max_abs_diffs(args.fixture, device)
        worst = max(diffs, key=diffs.get)
        print(f"parity vs official reference (fp32 on {device}): {len(diffs)} outputs, "
              f"max abs diff {diffs[worst]:.2e} ({worst})")
    print(f"| preset | precision | batch | forward+backward s | optimizer s | image-text pairs/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for batch in args.batch_sizes:
        fb, op = time_steps(args.preset, batch, device, args.precision, args.steps, args.warmup)
        print(f"| {args.preset} | {args.precision} | {batch} | {fb:.3f} | {op:.3f} | {batch / (fb + op):.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
