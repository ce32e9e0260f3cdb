"""Parity on the accelerator, and pre-training step throughput of a preset.

    python benchmarks/gpu_step.py --fixture PATH/x2vlm_official_tiny --preset x2vlm_base --batch-sizes 32 64

Parity: the official tiny checkpoint's reference outputs (computed on CPU, fp32) against
ours on this device in fp32. Throughput: forward + backward + AdamW step of the full
pre-training loss (ITC, ITM with hard negatives, MLM, region box losses) on random inputs,
bf16 autocast, 224 px, 40 tokens; plain torch (no DeepSpeed), one device.
"""

import argparse
import platform
import time

import torch

from x2vlm_core.checkpoint import load_state_file
from x2vlm_core.models.registry import create_model
from x2vlm_core.train.pretrain_objective import pretraining_losses


def parity(fixture: str, device: torch.device) -> float:
    model = create_model("x2vlm_base", image_res=48, embed_dim=16, vision={"depth": 1},
                         text={"vocab_size": 64, "hidden_size": 32, "num_layers": 3, "fusion_start_at": 2,
                               "num_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64})
    model.load_state_dict(load_state_file(f"{fixture}/x2vlm_tiny.th"), strict=True)
    model = model.to(device).eval()
    ref = torch.load(f"{fixture}/reference_io.pt", weights_only=True)
    x = {k: v.to(device) for k, v in ref["inputs"].items()}
    with torch.no_grad():
        image_embeds, atts = model.get_vision_embeds(x["image"])
        text_embeds = model.get_text_embeds(x["text_ids"], x["text_atts"])
        cross = model.get_cross_embeds(image_embeds, atts, text_embeds, x["text_atts"])
    diffs = [(image_embeds.cpu() - ref["outputs"]["image_embeds"]).abs().max(),
             (text_embeds.cpu() - ref["outputs"]["text_embeds"]).abs().max(),
             (cross.cpu() - ref["outputs"]["cross_pos"]).abs().max()]
    return float(max(diffs))


def random_batches(batch: int, cfg, device):
    grid = cfg.num_patches_side
    tokens, masks = 40, 12
    text = {"text_ids": torch.randint(1000, 30000, (batch, tokens), device=device),
            "text_atts": torch.ones(batch, tokens, dtype=torch.long, device=device),
            "text_ids_masked": torch.randint(1000, 30000, (batch, tokens), device=device),
            "masked_pos": torch.randint(1, tokens, (batch, masks), device=device),
            "masked_ids": torch.randint(1000, 30000, (batch, masks), device=device)}
    image_batch = {"image": torch.randn(batch, 3, cfg.image_res, cfg.image_res, device=device), **text}
    atts = torch.zeros(batch, 1 + grid * grid, dtype=torch.long, device=device)
    atts[:, 0] = 1
    atts[:, 1: 1 + grid * grid // 4] = 1
    region_batch = {"image": torch.randn(batch // 4, 3, cfg.image_res, cfg.image_res, device=device),
                    "image_atts": atts, "idx_to_group_img": torch.arange(batch, device=device) // 4,
                    "target_bbox": torch.full((batch, 4), 0.4, device=device),
                    "is_image": torch.zeros(batch, dtype=torch.long, device=device), **text}
    return image_batch, region_batch


def throughput(preset: str, batch: int, device: torch.device, steps: int = 10) -> float:
    model = create_model(preset).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
    batches = random_batches(batch, model.config, device)
    for i in range(steps + 3):
        if i == 3:
            torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = sum(pretraining_losses(model, *batches).values())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fixture", required=True)
    parser.add_argument("--preset", default="x2vlm_base")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64])
    args = parser.parse_args()
    device = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, python {platform.python_version()}")
    print(f"parity vs official reference (fp32 on {device}): max abs diff {parity(args.fixture, device):.2e}")
    print(f"| preset | batch | image-text pairs/s (+ same count of region texts) |")
    print("| --- | --- | --- |")
    for batch in args.batch_sizes:
        print(f"| {args.preset} | {batch} | {throughput(args.preset, batch, device):.1f} |", flush=True)


if __name__ == "__main__":
    main()
