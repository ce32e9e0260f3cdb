"""The model's fast path: FLOP accounting, unmasked attention, cached position bias, compilation."""

from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from x2vlm_core.families import create_model
from x2vlm_core.models import losses
from x2vlm_core.models.compile import compile_encoders
from x2vlm_core.models.flops import StepShapes, pretraining_step_flops
from x2vlm_core.train.pretrain_objective import pretraining_losses


def _batches(cfg, batch: int, region_texts: int, region_images: int, length: int = 9, masked: int = 3):
    g = torch.Generator().manual_seed(0)
    grid = cfg.num_patches_side

    def text(rows):
        ids = torch.randint(1000, cfg.text.vocab_size, (rows, length), generator=g)
        atts = torch.ones(rows, length, dtype=torch.long)
        atts[0, -2:] = 0  # one padded text
        return {
            "text_ids": ids,
            "text_atts": atts,
            "text_ids_masked": ids.clone(),
            "masked_pos": torch.randint(1, length - 2, (rows, masked), generator=g),
            "masked_ids": torch.randint(1000, cfg.text.vocab_size, (rows, masked), generator=g),
        }

    image_batch = {"image": torch.randn(batch, 3, cfg.image_res, cfg.image_res, generator=g), **text(batch)}
    atts = torch.zeros(region_texts, 1 + grid * grid, dtype=torch.long)
    atts[:, : 1 + grid * grid // 2] = 1
    region_batch = {
        "image": torch.randn(region_images, 3, cfg.image_res, cfg.image_res, generator=g),
        "image_atts": atts,
        "idx_to_group_img": torch.arange(region_texts) % region_images,
        "target_bbox": torch.full((region_texts, 4), 0.4),
        "is_image": torch.zeros(region_texts, dtype=torch.long),
        **text(region_texts),
    }
    return image_batch, region_batch


@pytest.mark.parametrize("preset, with_itm", [("x2vlm_tiny", True), ("x2vlm_tiny", False)])
def test_step_flops_match_torch_flop_counter(preset, with_itm):
    model = create_model(preset)
    image_batch, region_batch = _batches(model.config, batch=6, region_texts=5, region_images=2)
    # The math backend runs attention as matmuls, which FlopCounterMode counts on CPU.
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        loss = sum(pretraining_losses(model, image_batch, region_batch, with_itm=with_itm).values())
        forward = counter.get_total_flops()
        loss.backward()
    total = counter.get_total_flops()
    shapes = StepShapes(batch=6, text_len=9, masked_tokens=3, region_texts=5, region_images=2, with_itm=with_itm)
    flops = pretraining_step_flops(model.config, shapes)
    assert flops.forward == pytest.approx(forward, rel=0.02)
    assert flops.total == pytest.approx(total, rel=0.02)
    assert flops.mfu(seconds=2.0, peak_tflops=flops.total / 1e12) == pytest.approx(0.5)


def test_base_preset_flops_match_the_counter_on_the_meta_device():
    """x2vlm_base at batch 64, counted without computing anything: shapes only."""
    with torch.device("meta"):
        model = create_model("x2vlm_base")
    batches = _batches(model.config, batch=64, region_texts=48, region_images=16, length=40, masked=12)
    batches = [{k: v.to("meta") for k, v in batch.items()} for batch in batches]
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        sum(pretraining_losses(model, *batches).values()).backward()
    shapes = StepShapes(batch=64, text_len=40, masked_tokens=12, region_texts=48, region_images=16)
    assert pretraining_step_flops(model.config, shapes).total == pytest.approx(counter.get_total_flops(), rel=0.02)


def test_unmasked_attention_equals_an_all_ones_mask_and_skips_the_mask():
    model = create_model("x2vlm_tiny").eval()
    image_batch, _ = _batches(model.config, batch=3, region_texts=1, region_images=1)
    ids = image_batch["text_ids"]
    ones = torch.ones_like(ids)
    with torch.no_grad():
        image, image_ones = model.get_vision_embeds(image_batch["image"])
        text = model.get_text_embeds(ids, None)
        torch.testing.assert_close(text, model.get_text_embeds(ids, ones), rtol=0, atol=1e-6)
        fused = model.get_cross_embeds(image, None, text, None)
        torch.testing.assert_close(fused, model.get_cross_embeds(image, image_ones, text, ones), rtol=0, atol=1e-6)
        feats = model.get_image_feat(image), model.get_text_feat(text)
        torch.manual_seed(0)
        itm = losses.matching_loss(model, image, None, feats[0], text, None, feats[1])
        torch.manual_seed(0)
        itm_ones = losses.matching_loss(model, image, image_ones, feats[0], text, ones, feats[1])
        torch.testing.assert_close(itm, itm_ones, rtol=0, atol=1e-6)

        masks = []
        real_sdpa = F.scaled_dot_product_attention

        def record(*args, **kwargs):
            masks.append(kwargs.get("attn_mask"))
            return real_sdpa(*args, **kwargs)

        with mock.patch.object(F, "scaled_dot_product_attention", side_effect=record):
            model.predict_bbox(image, text, None)
    fusion_layers = model.config.text.num_layers - model.config.text.fusion_start_at
    assert len(masks) == 2 * fusion_layers and all(mask is None for mask in masks)


def test_relative_position_bias_is_kept_in_inference_and_refreshed_when_the_table_changes():
    model = create_model("x2vlm_tiny")
    attn = model.vision_encoder.blocks[0].attn
    table = attn.relative_position_bias_table
    with torch.no_grad():
        table.normal_()
    model.eval()
    with torch.no_grad():
        first = attn.relative_position_bias()
        assert attn.relative_position_bias() is first  # gathered once, not per batch
        table.add_(1.0)  # what an optimizer step does
        refreshed = attn.relative_position_bias()
    torch.testing.assert_close(refreshed, first + 1.0)
    model.load_state_dict(create_model("x2vlm_tiny").state_dict())
    with torch.no_grad():
        torch.testing.assert_close(attn.relative_position_bias(), torch.zeros_like(first))
    model.train()
    assert attn._bias_cache is None
    bias = attn.relative_position_bias()
    assert bias.requires_grad  # training gathers it in the graph, so the table gets its gradient
    bias.sum().backward()
    assert table.grad is not None and table.grad.abs().sum() > 0


@pytest.fixture
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_compiled_blocks_capture_the_whole_training_step_without_graph_breaks(fresh_dynamo):
    """fullgraph=True makes any graph break an error; the eager backend keeps this fast."""
    eager = create_model("x2vlm_tiny").eval()  # no dropout, so both runs draw the same numbers
    compiled = create_model("x2vlm_tiny").eval()
    compiled.load_state_dict(eager.state_dict())
    compile_encoders(compiled, backend="eager")
    assert list(compiled.state_dict()) == list(eager.state_dict())  # checkpoint names unchanged
    batches = _batches(eager.config, batch=4, region_texts=3, region_images=2)
    results = []
    for model in (eager, compiled):
        torch.manual_seed(0)
        terms = pretraining_losses(model, *batches)
        sum(terms.values()).backward()
        results.append(terms)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 3  # vision, text and fusion blocks
    for name in results[0]:
        torch.testing.assert_close(results[1][name], results[0][name], rtol=0, atol=1e-6)
    for (name, a), b in zip(eager.named_parameters(), compiled.parameters()):
        if a.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.slow
def test_inductor_compiled_tiny_gives_the_eager_outputs(fresh_dynamo):
    eager = create_model("x2vlm_tiny").eval()
    compiled = create_model("x2vlm_tiny").eval()
    compiled.load_state_dict(eager.state_dict())
    compile_encoders(compiled)
    image_batch, _ = _batches(eager.config, batch=3, region_texts=1, region_images=1)
    outputs = []
    with torch.no_grad():
        for model in (eager, compiled):
            image, image_atts = model.get_vision_embeds(image_batch["image"])
            text = model.get_text_embeds(image_batch["text_ids"], image_batch["text_atts"])
            outputs.append((image, text, model.get_cross_embeds(image, None, text, image_batch["text_atts"])))
    for ours, reference in zip(outputs[1], outputs[0]):
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("preset", ["vlmo_tiny", "cclm_tiny"])
def test_every_family_compiles_block_by_block_without_graph_breaks(preset, fresh_dynamo):
    """train.compile=auto compiles on GPU whatever the family: a graph break there would fail the run."""
    model = compile_encoders(create_model(preset), backend="eager")
    res = model.config.image_res
    image, ids = torch.randn(2, 3, res, res), torch.randint(5, 100, (2, 10))
    atts = torch.ones(2, 10, dtype=torch.long)
    image_embeds, image_atts = model.get_vision_embeds(image)
    text_embeds = model.get_text_embeds(ids, atts)
    text_feat = (
        model.get_text_feat(text_embeds, atts) if preset.startswith("vlmo") else model.get_text_feat(text_embeds)
    )
    logits = model.itm_logits(image_embeds, image_atts, text_embeds, atts)
    (model.get_image_feat(image_embeds).sum() + text_feat.sum() + logits.sum()).backward()
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 2
