"""Weakly supervised grounding's parts: the Grad-CAM heat map, proposal scoring, the dets file and who may run it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from x2vlm_core.data.readers import read_source
from x2vlm_core.data.shard_writer import shard_meta
from x2vlm_core.data.sources import load_sources
from x2vlm_core.data.synthetic import generate_shapes_world
from x2vlm_core.dataprep.boxes import PROPOSAL, fit_record_boxes
from x2vlm_core.errors import ConfigError, DataError
from x2vlm_core.evaluation.proposals import best_proposal, proposal_scores
from x2vlm_core.families import create_model, get_family
from x2vlm_core.models.attention_maps import (
    cross_attention_of,
    itm_gradcam,
    keep_attention_probs,
    middle_fusion_layer,
)
from x2vlm_core.tasks import grounding_weakly


def _inputs(model, batch=3):
    torch.manual_seed(1)
    image = torch.randn(batch, 3, model.config.image_res, model.config.image_res)
    text_ids = torch.randint(1000, 2000, (batch, 7))
    text_atts = torch.ones_like(text_ids)
    text_atts[1, 4:] = 0  # one padded row
    return image, text_ids, text_atts


@torch.no_grad()
def _embedded(model):
    """The encoders' outputs for ``_inputs``: image embeds and mask, text embeds, text ids and mask."""
    image, ids, atts = _inputs(model)
    image_embeds, image_atts = model.get_vision_embeds(image)
    return image_embeds, image_atts, model.get_text_embeds(ids, atts), ids, atts


@pytest.mark.parametrize("preset", ["x2vlm_tiny", "xvlm_tiny"])
def test_keeping_the_attention_changes_no_output(preset):
    torch.manual_seed(0)
    model = create_model(preset).eval()
    image_embeds, image_atts, text_embeds, ids, atts = _embedded(model)
    with torch.no_grad():
        plain = model.itm_logits(image_embeds, image_atts, text_embeds, atts)
        layer = middle_fusion_layer(model)
        with keep_attention_probs(cross_attention_of(model, layer)) as kept:
            kept_run = model.itm_logits(image_embeds, image_atts, text_embeds, atts)
        after = model.itm_logits(image_embeds, image_atts, text_embeds, atts)
    torch.testing.assert_close(kept_run, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(after, plain, rtol=0, atol=0)  # the hook is gone once the block ends
    (probs,) = kept
    assert probs.shape == (3, model.config.text.num_heads, ids.shape[1], image_embeds.shape[1])
    torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]))


@pytest.mark.parametrize("preset", ["x2vlm_tiny", "xvlm_tiny"])
def test_the_gradcam_map_is_a_non_negative_grid_and_leaves_the_weights_alone(preset):
    torch.manual_seed(0)
    model = create_model(preset).eval()
    image_embeds, image_atts, text_embeds, ids, atts = _embedded(model)
    heat = itm_gradcam(model, middle_fusion_layer(model), image_embeds, image_atts, text_embeds, atts)
    grid = model.config.num_patches_side
    assert heat.shape == (3, grid, grid) and not heat.requires_grad
    assert (heat >= 0).all() and (heat.flatten(1).sum(1) > 0).all()  # some patch raised each row's match logit
    assert all(p.grad is None for p in model.parameters())
    # Each row's map is its own: a row computed alone gives the same map.
    alone = itm_gradcam(model, middle_fusion_layer(model), image_embeds[:1], image_atts[:1], text_embeds[:1], atts[:1])
    torch.testing.assert_close(alone[0], heat[0], rtol=1e-4, atol=1e-7)


def test_a_layer_without_cross_attention_is_refused():
    model = create_model("x2vlm_tiny")
    with pytest.raises(
        ConfigError, match=r"layer 0 of the BERT stack has no cross-attention; pick a fusion layer among \[2, 3\]"
    ):
        cross_attention_of(model, 0)


def test_the_proposal_covering_the_heat_wins():
    heat = torch.zeros(8, 8)
    heat[5:7, 2:4] = 1.0  # rows 5-6, columns 2-3 of the grid: x 20-40, y 50-70 in an 80 x 80 image
    proposals = torch.tensor(
        [
            [0.0, 0.0, 80.0, 80.0],  # everything: the most heat, spread over a large area
            [50.0, 10.0, 20.0, 20.0],  # elsewhere
            [20.0, 50.0, 20.0, 20.0],  # the hot patches
            [25.0, 55.0, 5.0, 5.0],  # inside them, but small
        ]
    )
    scores = proposal_scores(heat, proposals, 80, 80, alpha=0.5)
    assert best_proposal(heat, proposals, 80, 80, alpha=0.5) == 2
    assert scores[1] < scores[0] < scores[2]
    # alpha 0 (total heat) prefers the whole image, alpha 1 (mean heat) a small box inside the heat.
    assert best_proposal(heat, proposals, 80, 80, alpha=0.0) == 0
    assert best_proposal(heat, proposals, 80, 80, alpha=1.0) in (2, 3)
    # A non-square image: the grid is stretched over it.
    assert best_proposal(heat, proposals * torch.tensor([2.0, 1.0, 2.0, 1.0]), 160, 80, alpha=0.5) == 2


def test_proposals_are_fitted_to_the_image_and_scaled_with_it():
    record = {
        "kind": "grounding",
        "sentences": ["left"],
        "bbox": [10, 10, 20, 20],
        "proposals": [[10, 10, 20, 20], [110, 0, 20, 10], [5, 5, 0, 10], [300, 300, 10, 10]],
    }
    fitted, outcomes, reason = fit_record_boxes(record, (120, 90))
    assert reason is None
    assert fitted["proposals"] == [[10.0, 10.0, 20.0, 20.0], [110.0, 0.0, 10.0, 10.0]]
    assert outcomes == {f"{PROPOSAL}clipped": 1, f"{PROPOSAL}degenerate": 1, f"{PROPOSAL}mostly_outside": 1}
    meta = shard_meta({**fitted, "image_paths": ["x.jpg"]}, [(60, 45)], 0.5)
    assert meta["proposals"] == [[5.0, 5.0, 10.0, 10.0], [55.0, 0.0, 5.0, 5.0]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("world")
    generate_shapes_world(root, num_images=30, seed=3)
    return root


def _refcoco_source(root: Path, dets: Path | None):
    entry = {
        "format": "refcoco",
        "dataset": "grounding",
        "refs": str(root / "refcoco+/refs(unc).p"),
        "instances": str(root / "refcoco+/instances.json"),
        "images": str(root / "coco/train2014"),
    }
    if dets is not None:
        entry["dets"] = str(dets)
    return load_sources([entry])[0]


def test_the_shapes_world_proposes_every_shape_and_some_distractors(world):
    dets = json.loads((world / "refcoco+/dets.json").read_text())
    records = list(read_source(_refcoco_source(world, world / "refcoco+/dets.json")))
    assert records and all(len(r["proposals"]) == len(dets[str(r["image_id"])]) for r in records)
    for record in records:
        assert record["bbox"] in record["proposals"]  # the referred shape is always among them
        assert len(record["proposals"]) > 1 and all(len(box) == 4 for box in record["proposals"])
    # The true box is not always first: an untrained model's ties cannot score by position.
    assert {r["proposals"].index(r["bbox"]) for r in records} != {0}
    # Without the dets file the records are as before.
    assert all("proposals" not in r for r in read_source(_refcoco_source(world, None)))


def test_a_malformed_dets_file_is_refused_in_one_line(world, tmp_path):
    bad = tmp_path / "dets.json"
    bad.write_text(json.dumps({"7": [[1, 2, 3]]}))
    with pytest.raises(DataError, match=r"dets\.json: 7\[0\] is \[1, 2, 3\], expected \[x, y, width, height, \.\.\.\]"):
        list(read_source(_refcoco_source(world, bad)))
    bad.write_text(json.dumps([[1, 2, 3, 4]]))
    with pytest.raises(DataError, match="expected an object of image id -> detection boxes"):
        list(read_source(_refcoco_source(world, bad)))


def test_samples_without_proposals_are_left_out_and_a_split_without_any_is_refused():
    with_boxes = {"key": "a", "meta": {"proposals": [[0, 0, 1, 1]]}}
    without = {"key": "b", "meta": {}}
    assert grounding_weakly.with_proposals([with_boxes, without]) == [with_boxes]
    with pytest.raises(DataError, match="give the refcoco source its dets file"):
        grounding_weakly.with_proposals([without])


def test_families_without_a_fusion_cross_attention_refuse_the_task():
    assert "grounding_weakly" in get_family("x2vlm").tasks and "grounding_weakly" in get_family("xvlm").tasks
    with pytest.raises(ConfigError, match="VLMo cannot do grounding_weakly: .*no cross-attention layer"):
        get_family("vlmo").task("grounding_weakly")
    with pytest.raises(ConfigError, match="CCLM cannot do grounding_weakly"):
        get_family("cclm").task("grounding_weakly")
