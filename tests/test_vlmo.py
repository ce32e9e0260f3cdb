"""VLMo: presets, the shared position table, expert routing, checkpoints, stages, objectives."""

import random

import pytest
import torch
import torch.nn.functional as F
import yaml

from x2vlm_core.config_io import to_dict
from x2vlm_core.data.collate import TextEncoder
from x2vlm_core.data.masking import MaskingConfig
from x2vlm_core.errors import CheckpointError, ConfigError, DataError
from x2vlm_core.families import config_from_dict, create_model, model_config
from x2vlm_core.families.vlmo import objectives
from x2vlm_core.families.vlmo.checkpoint import to_official_layout
from x2vlm_core.families.vlmo.config import VLMoConfig
from x2vlm_core.families.vlmo.model import HEAD_PREFIXES, VLMo, backbone_parameter_count
from x2vlm_core.families.vlmo.positions import image_rows, table_rows
from x2vlm_core.families.vlmo.stages import init_from_beit, stage_trainable
from x2vlm_core.models.beit2 import BEiT2
from x2vlm_core.models.config import VisionConfig
from x2vlm_core.release.model_folder import init_from, load_model_dir, read_model_config, save_model_dir
from x2vlm_core.run_config import load_run_config

CAPTIONS = [
    "a red circle on the left",
    "two blue squares",
    "a green triangle above a square",
    "a yellow circle",
    "three small red triangles",
    "a blue circle next to a green square",
]


def tiny(**overrides) -> VLMo:
    torch.manual_seed(0)
    model = create_model("vlmo_tiny", **overrides).eval()
    with torch.no_grad():  # make the position table and layer scale matter in comparisons
        if model.config.relative_position:
            model.relative_position_bias_table.normal_(0, 0.5)
        for block in model.transformer.blocks:
            block.gamma_1.uniform_(0.5, 1.5)
            block.gamma_2.uniform_(0.5, 1.5)
    return model


def text_batch(n: int = 4, max_tokens: int = 24) -> dict[str, torch.Tensor]:
    text = TextEncoder("builtin:bert-base-uncased", max_tokens)
    return text.masked(CAPTIONS[:n], MaskingConfig(), random.Random(0))


def image_text(n: int = 4) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return {"image": torch.randn(n, 3, 64, 64), **text_batch(n)}


# ---- presets -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "preset,readme_millions,exact",
    [("vlmo_base", 175, 175_430_496), ("vlmo_base_plus", 167, 166_567_360), ("vlmo_large", 562, 561_544_448)],
)
def test_preset_sizes_are_the_readme_counts_of_the_backbone(preset, readme_millions, exact):
    with torch.device("meta"):
        model = create_model(preset)
    count = backbone_parameter_count(model)
    assert count == exact
    assert round(count / 1e6) == readme_millions
    # The README counts no heads: with them the figure would be another one.
    heads = sum(p.numel() for n, p in model.named_parameters() if n.startswith(HEAD_PREFIXES))
    assert round((count + heads) / 1e6) != readme_millions


def test_presets_are_selected_by_name_anywhere_a_preset_is_accepted():
    config, _ = load_run_config(None, preset="vlmo_base", overrides=["model.image_res=384"])
    assert isinstance(config, VLMoConfig) and config.image_res == 384 and config.vlffn_start == 10
    assert model_config("vlmo_large").vlffn_start == 21
    plus = model_config("vlmo_base_plus")
    assert not plus.relative_position and plus.layer_scale_init is None
    assert config_from_dict(yaml.safe_load(yaml.safe_dump(to_dict(plus))), where="config.yaml") == plus
    with torch.device("meta"):
        assert not hasattr(create_model("vlmo_base_plus"), "relative_position_bias_table")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['vl_start'\].*vlffn_start"):
        model_config("vlmo_tiny", vl_start=1)
    with pytest.raises(ConfigError, match="vlffn_start 9 must be in"):
        model_config("vlmo_tiny", vlffn_start=9)
    with pytest.raises(ConfigError, match="unknown task head"):
        model_config("vlmo_tiny", task_heads=["captioning"])


# ---- the shared relative position table ---------------------------------------------------------------


def official_text_index(length: int, grid: int, rel_len: int) -> torch.Tensor:
    """The official text map, element by element: key-minus-query offsets shifted past the image and cross rows."""
    image = image_rows(grid)
    total = table_rows(grid, rel_len)
    index = torch.empty(length, length, dtype=torch.long)
    for i in range(length):
        for j in range(length):
            if i == 0 and j == 0:
                index[i, j] = total - 1
            elif j == 0:
                index[i, j] = total - 2
            elif i == 0:
                index[i, j] = total - 3
            else:
                index[i, j] = (j - i) - (2 - rel_len) + image + 2
    return index


def official_image_index(grid: int) -> torch.Tensor:
    n = image_rows(grid)
    index = torch.empty(grid * grid + 1, grid * grid + 1, dtype=torch.long)
    index[0, :], index[:, 0], index[0, 0] = n - 3, n - 2, n - 1
    for p in range(grid * grid):
        for q in range(grid * grid):
            dy, dx = p // grid - q // grid, p % grid - q % grid  # query minus key
            index[1 + p, 1 + q] = (dy + grid - 1) * (2 * grid - 1) + (dx + grid - 1)
    return index


def test_index_maps_share_one_table_without_overlap():
    model = tiny()
    grid, rel_len = 8, 24
    assert model.relative_position_bias_table.shape == (table_rows(grid, rel_len), 4 * 4)
    image = model.relative_position_index
    text = model._text_index(24)
    torch.testing.assert_close(image, official_image_index(grid))
    torch.testing.assert_close(text, official_text_index(24, grid, rel_len))
    # A shorter text reads the same rows: its map is the corner of the longest one.
    torch.testing.assert_close(model._text_index(7), official_text_index(7, grid, rel_len))
    rows_image, rows_text = set(image.flatten().tolist()), set(text.flatten().tolist())
    cross = {image_rows(grid), image_rows(grid) + 1}
    assert not rows_image & rows_text and not (rows_image | rows_text) & cross
    assert max(rows_image) < image_rows(grid) <= min(rows_text) - 2
    assert not model.state_dict().keys() & {"relative_position_index", "text_relative_position_index"}


def test_each_part_of_the_table_moves_only_its_mode():
    model, batch = tiny(), image_text(2)
    atts = torch.ones(2, 65, dtype=torch.long)

    def outputs():
        with torch.no_grad():
            img = model.embed_image(batch["image"])
            txt = model.embed_text(batch["text_ids"])
            return (
                model.encode_image(img)[0],
                model.encode_text(txt, batch["text_atts"])[0],
                model.fuse(img, atts, txt, batch["text_atts"]),
            )

    before = outputs()
    grid = model.config.num_patches_side
    changed_by = {}
    for part, rows in (
        ("image", slice(0, 10)),
        ("cross", slice(image_rows(grid), image_rows(grid) + 2)),
        ("text", slice(image_rows(grid) + 2, -3)),
    ):  # not all: a shift of every row cancels
        with torch.no_grad():
            saved = model.relative_position_bias_table[rows].clone()
            model.relative_position_bias_table[rows] += 1.0
        after = outputs()
        changed_by[part] = tuple(not torch.allclose(a, b) for a, b in zip(before, after))
        with torch.no_grad():
            model.relative_position_bias_table[rows] = saved
    # (image encoder, text encoder, fusion)
    assert changed_by == {"image": (True, False, True), "cross": (False, False, True), "text": (False, True, True)}


# ---- a reference forward, written as the official model computes it ----------------------------------


def reference_run(model: VLMo, x, keep, index, mode, text_len=0, start=0, stop=None):
    depth, heads = model.config.depth, model.config.num_heads
    table = model.relative_position_bias_table
    all_bias = table[index].permute(2, 0, 1)  # [heads*depth, N, N]
    for layer in range(start, depth if stop is None else stop):
        block = model.transformer.blocks[layer]
        attn, b, n, c = block.attn, *x.shape
        y = block.norm1(x)
        qkv = y @ attn.qkv.weight.t() + torch.cat([attn.q_bias, torch.zeros_like(attn.q_bias), attn.v_bias])
        q, k, v = qkv.reshape(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
        scores = (q * (c // heads) ** -0.5) @ k.transpose(-2, -1) + all_bias[layer * heads : (layer + 1) * heads]
        scores = scores.masked_fill(keep[:, None, None, :] == 0, float("-inf"))
        x = x + block.gamma_1 * attn.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c))

        def ffn(z, norm, mlp):
            return z + block.gamma_2 * mlp(norm(z))

        if mode == "image":
            x = ffn(x, block.norm2_imag, block.mlp_imag)
        elif mode == "text":
            x = ffn(x, block.norm2_text, block.mlp_text)
        elif hasattr(block, "mlp_vl"):
            x = ffn(x, block.norm2_vl, block.mlp_vl)
        else:
            x = torch.cat(
                [
                    ffn(x[:, :text_len], block.norm2_text, block.mlp_text),
                    ffn(x[:, text_len:], block.norm2_imag, block.mlp_imag),
                ],
                dim=1,
            )
    return x


def test_dual_and_fusion_encoders_match_the_official_computation():
    model, batch = tiny(), image_text(3)
    batch["text_atts"][1, 4:] = 0
    grid, start, norm = 8, model.config.vlffn_start, model.transformer.norm
    words = (
        model.text_embeddings.word_embeddings(batch["text_ids"]) + model.text_embeddings.token_type_embeddings.weight[0]
    )
    text_tokens = model.text_embeddings.LayerNorm(words) + model.token_type_embeddings.weight[0]
    patches = model.transformer.patch_embed.proj(batch["image"]).flatten(2).transpose(1, 2)
    image_tokens = torch.cat([model.transformer.cls_token.expand(3, -1, -1), patches], 1)
    image_tokens = image_tokens + model.token_type_embeddings.weight[1]
    t, ones = text_tokens.shape[1], torch.ones(3, 65, dtype=torch.long)
    image_index, text_index = official_image_index(grid), official_text_index(t, grid, 24)
    fused_index = torch.cat(
        [
            torch.cat([text_index, torch.full((t, 65), image_rows(grid))], 1),
            torch.cat([torch.full((65, t), image_rows(grid) + 1), image_index], 1),
        ],
        0,
    )
    with torch.no_grad():
        torch.testing.assert_close(model.embed_text(batch["text_ids"]), text_tokens)
        torch.testing.assert_close(model.embed_image(batch["image"]), image_tokens)
        fused = model.fuse(image_tokens, ones, text_tokens, batch["text_atts"])
        keep = torch.cat([batch["text_atts"], ones], 1)
        expected = norm(reference_run(model, torch.cat([text_tokens, image_tokens], 1), keep, fused_index, "vl", t))
        torch.testing.assert_close(fused, expected, rtol=1e-4, atol=1e-4)

        top, vl = model.encode_text(text_tokens, batch["text_atts"], with_vl=True)
        below = reference_run(model, text_tokens, batch["text_atts"], text_index, "text", stop=start)
        torch.testing.assert_close(
            top,
            norm(reference_run(model, below, batch["text_atts"], text_index, "text", start=start)),
            rtol=1e-4,
            atol=1e-4,
        )
        torch.testing.assert_close(
            vl,
            norm(reference_run(model, below, batch["text_atts"], text_index, "vl", start=start)),
            rtol=1e-4,
            atol=1e-4,
        )
        top, _ = model.encode_image(image_tokens)
        torch.testing.assert_close(
            top, norm(reference_run(model, image_tokens, ones, image_index, "image")), rtol=1e-4, atol=1e-4
        )


# ---- expert routing --------------------------------------------------------------------------------


def count_expert_tokens(model: VLMo, run) -> dict[str, list[int]]:
    """Tokens per sample that each expert of each block processed while ``run()`` ran."""
    seen = {name: [0] * model.config.depth for name in ("mlp_imag", "mlp_text", "mlp_vl")}
    handles = []
    for index, block in enumerate(model.transformer.blocks):
        for name in seen:
            if hasattr(block, name):

                def hook(module, inputs, output, name=name, index=index):
                    seen[name][index] += inputs[0].shape[1]

                handles.append(getattr(block, name).register_forward_hook(hook))
    with torch.no_grad():
        run()
    for handle in handles:
        handle.remove()
    return seen


def test_image_tokens_use_the_v_ffn_text_the_l_ffn_and_fusion_the_vl_ffn_from_vlffn_start():
    model, batch = tiny(), image_text(2)
    image = model.embed_image(batch["image"])
    text = model.embed_text(batch["text_ids"])
    t, i = text.shape[1], image.shape[1]
    atts = torch.ones(2, i, dtype=torch.long)
    assert [hasattr(b, "mlp_vl") for b in model.transformer.blocks] == [False, False, True, True]

    assert count_expert_tokens(model, lambda: model.encode_image(image)) == {
        "mlp_imag": [i] * 4,
        "mlp_text": [0] * 4,
        "mlp_vl": [0] * 4,
    }
    # The pre-training dual encoder also runs the top blocks through the VL-FFN, from vlffn_start.
    assert count_expert_tokens(model, lambda: model.encode_image(image, with_vl=True)) == {
        "mlp_imag": [i] * 4,
        "mlp_text": [0] * 4,
        "mlp_vl": [0, 0, i, i],
    }
    assert count_expert_tokens(model, lambda: model.encode_text(text, batch["text_atts"], with_vl=True)) == {
        "mlp_imag": [0] * 4,
        "mlp_text": [t] * 4,
        "mlp_vl": [0, 0, t, t],
    }
    assert count_expert_tokens(model, lambda: model.fuse(image, atts, text, batch["text_atts"])) == {
        "mlp_imag": [i, i, 0, 0],
        "mlp_text": [t, t, 0, 0],
        "mlp_vl": [0, 0, t + i, t + i],
    }
    # Text-only MLM (the text stage): the L-FFN in every block.
    assert count_expert_tokens(
        model, lambda: model.mlm_logits(batch["text_ids_masked"], batch["text_atts"], batch["masked_pos"])
    ) == {"mlp_imag": [0] * 4, "mlp_text": [t] * 4, "mlp_vl": [0] * 4}


def test_bad_inputs_are_named():
    model = tiny()
    with pytest.raises(DataError, match=r"takes images \[B, 3, 64, 64\], got \(1, 3, 32, 32\)"):
        model.embed_image(torch.zeros(1, 3, 32, 32))
    with pytest.raises(DataError, match="texts of 30 tokens exceed max_tokens=24"):
        model.embed_text(torch.ones(1, 30, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"no vqa head; call add_task_head\('vqa'\)"):
        model.vqa_logits(torch.zeros(1, 65, 64), torch.zeros(1, 3, 64), torch.ones(1, 3, dtype=torch.long))


# ---- checkpoints ------------------------------------------------------------------------------------


def test_official_key_layout_round_trip(tmp_path):
    model = tiny()
    model.add_task_head("nlvr2")
    state = model.state_dict()
    for key in (
        "transformer.blocks.0.mlp_text.fc1.weight",
        "transformer.blocks.0.mlp_imag.fc2.bias",
        "transformer.blocks.0.norm2_text.weight",
        "transformer.blocks.0.norm2_imag.bias",
        "transformer.blocks.2.mlp_vl.fc1.weight",
        "transformer.blocks.3.norm2_vl.weight",
        "transformer.blocks.1.attn.q_bias",
        "transformer.blocks.1.gamma_2",
        "transformer.patch_embed.proj.weight",
        "relative_position_bias_table",
        "text_embeddings.position_ids",
        "token_type_embeddings.weight",
        "itc_vl_image_proj.fc.weight",
        "itm_score.fc.bias",
        "mlm_score.bias",
        "pooler.dense.weight",
        "nlvr2_classifier.3.weight",
        "logit_vl_scale",
    ):
        assert key in state, key
    assert "transformer.blocks.1.mlp_vl.fc1.weight" not in state  # below vlffn_start

    official = to_official_layout(state)
    assert official["logit_scale"].dim() == 0
    torch.save(
        {"state_dict": official, "epoch": 3, "global_step": 1200, "hyper_parameters": {"max_text_len": 40}},
        tmp_path / "lightning.ckpt",
    )
    torch.save({"module": {"module." + k: v for k, v in official.items()}}, tmp_path / "deepspeed.pt")
    batch = image_text(2)
    with torch.no_grad():
        expected = model.nlvr2_logits(batch["image"], batch["image"].flip(0), batch["text_ids"], batch["text_atts"])
    for name in ("lightning.ckpt", "deepspeed.pt"):
        loaded = create_model("vlmo_tiny", task_heads=["nlvr2"]).eval()
        assert init_from(loaded, tmp_path / name) == []
        with torch.no_grad():
            got = loaded.nlvr2_logits(batch["image"], batch["image"].flip(0), batch["text_ids"], batch["text_atts"])
        torch.testing.assert_close(got, expected)


def test_official_checkpoint_fits_another_resolution_text_length_and_nlvr2(tmp_path):
    # A text-stage file: longer text positions, two token types; loaded into a 96 px NLVR2 model.
    source = tiny(max_tokens=24)
    torch.save({"model": to_official_layout(source.state_dict())}, tmp_path / "stage2.pt")
    target = create_model("vlmo_tiny", image_res=96, max_tokens=16, task_heads=["nlvr2"])
    left = init_from(target, tmp_path / "stage2.pt")
    assert all(key.startswith("nlvr2_classifier.") for key in left)
    table, old = target.relative_position_bias_table, source.relative_position_bias_table
    assert table.shape[0] == table_rows(12, 24)
    torch.testing.assert_close(table[image_rows(12) :], old[image_rows(8) :])  # cross and text rows kept
    torch.testing.assert_close(target.text_embeddings.position_ids, torch.arange(16)[None])
    types = target.token_type_embeddings.weight
    torch.testing.assert_close(types[2], types[1])
    with torch.no_grad():
        target.embed_image(torch.zeros(1, 3, 96, 96))

    wrong = create_model("vlmo_tiny", text_rel_pos_len=30)
    with pytest.raises(CheckpointError, match="text_rel_pos_len matches the checkpoint"):
        init_from(wrong, tmp_path / "stage2.pt")


def test_absolute_position_preset_resizes_its_position_embedding(tmp_path):
    source = create_model("vlmo_tiny", relative_position=False, layer_scale_init=None)
    assert not any("gamma" in k for k in source.state_dict())
    torch.save(to_official_layout(source.state_dict()), tmp_path / "plus.pt")
    target = create_model("vlmo_tiny", relative_position=False, layer_scale_init=None, image_res=96)
    assert init_from(target, tmp_path / "plus.pt") == []
    assert target.transformer.pos_embed.shape == (1, 1 + 12 * 12, 64)
    torch.testing.assert_close(target.transformer.pos_embed[:, 0], source.transformer.pos_embed[:, 0])


def test_model_folder_round_trip_keeps_family_heads_and_outputs(tmp_path):
    model = tiny()
    model.add_task_head("vqa")
    save_model_dir(model, tmp_path / "m")
    config = read_model_config(tmp_path / "m")
    assert isinstance(config, VLMoConfig) and config.family == "vlmo" and config.task_heads == ["vqa"]
    loaded = load_model_dir(tmp_path / "m").eval()
    assert isinstance(loaded, VLMo)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)
    batch = image_text(2)
    with torch.no_grad():
        args = (model.embed_image(batch["image"]), model.embed_text(batch["text_ids"]), batch["text_atts"])
        torch.testing.assert_close(loaded.vqa_logits(*args), model.vqa_logits(*args))
    (tmp_path / "m" / "config.yaml").write_text(
        (tmp_path / "m" / "config.yaml").read_text().replace("family: vlmo", "family: vlmo2")
    )
    with pytest.raises(ConfigError, match="unknown model family 'vlmo2'"):
        read_model_config(tmp_path / "m")


def test_beit_checkpoint_becomes_the_v_ffn_side(tmp_path):
    """A BEiT encoder (the repo's BEiT-2, same layout) loaded into VLMo computes the same image path."""
    torch.manual_seed(0)
    beit = BEiT2(VisionConfig(width=64, depth=4, num_heads=4, patch_size=8, drop_path_rate=0.0), 64).eval()
    with torch.no_grad():
        for block in beit.blocks:
            block.attn.relative_position_bias_table.normal_(0, 0.5)
    torch.save({"model": beit.state_dict()}, tmp_path / "beit.pth")
    model = create_model("vlmo_tiny").eval()
    text_rows = model.relative_position_bias_table[image_rows(8) :].clone()
    left = init_from_beit(model, tmp_path / "beit.pth")
    assert "transformer.blocks.0.mlp_text.fc1.weight" in left and "transformer.blocks.0.mlp_imag.fc1.weight" not in left
    torch.testing.assert_close(model.relative_position_bias_table[image_rows(8) :], text_rows)
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        model.token_type_embeddings.weight[1] = 0  # BEiT has no token types
        x = beit.patch_embed(image)
        x = torch.cat([beit.cls_token.expand(2, -1, -1), x], 1)
        for block in beit.blocks:
            x = block(x)
        expected = F.layer_norm(x, (64,), eps=1e-6)  # VLMo's final norm, at its initialisation
        got = model.encode_image(model.embed_image(image))[0]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


# ---- stages -----------------------------------------------------------------------------------------


def test_stage_trainable_sets():
    model = tiny()
    image = set(stage_trainable(model, "image"))
    assert "transformer.blocks.0.attn.qkv.weight" in image and "transformer.blocks.3.mlp_imag.fc1.weight" in image
    assert "relative_position_bias_table" in image and "transformer.norm.weight" in image
    assert not any(
        ("mlp_text" in n or "mlp_vl" in n or n.startswith(("text_embeddings", "itc_", "mlm_score"))) for n in image
    )
    text = set(stage_trainable(model, "text"))
    assert {n for n in text if n.startswith("transformer.")} == {
        n for n, _ in model.named_parameters() if "mlp_text" in n or "norm2_text" in n
    }
    assert {
        "text_embeddings.word_embeddings.weight",
        "mlm_score.decoder.weight",
        "relative_position_bias_table",
    } <= text
    assert not text & {"token_type_embeddings.weight", "transformer.blocks.0.gamma_2", "itc_text_proj.fc.weight"}
    assert len(stage_trainable(model, "vl")) == len(list(model.parameters()))
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ConfigError, match="unknown VLMo pre-training stage 'audio'"):
        stage_trainable(model, "audio")


def adamw(model: VLMo, lr: float = 1e-3) -> torch.optim.AdamW:
    """Weight decay as the official optimizer: none on the position table, biases and norms."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            exempt = param.dim() <= 1 or name.endswith(".bias") or name in model.no_weight_decay_keys
            (no_decay if exempt else decay).append(param)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=lr
    )


def train(model: VLMo, objective, batch, steps: int) -> list[float]:
    optimizer, history = adamw(model), []
    model.train()
    for _ in range(steps):
        total = sum(model(objective, batch).values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append(total.item())
    return history


def test_text_stage_trains_text_parts_and_leaves_the_image_path_unchanged():
    model, batch = tiny(), image_text(4)
    stage_trainable(model, "text")
    image_rows_before = model.relative_position_bias_table[: image_rows(8) + 2].clone()
    text_rows_before = model.relative_position_bias_table[image_rows(8) + 2 :].clone()
    with torch.no_grad():
        image_before = model.encode_image(model.embed_image(batch["image"]))[0]
    history = train(model, objectives.text_only_losses, batch, steps=6)
    assert history[-1] < history[0]
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(model.embed_image(batch["image"]))[0], image_before)
    torch.testing.assert_close(model.relative_position_bias_table[: image_rows(8) + 2], image_rows_before)
    assert not torch.allclose(model.relative_position_bias_table[image_rows(8) + 2 :], text_rows_before)


# ---- objectives -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_vision_language_pretraining_steps_lower_the_loss():
    model, batch = tiny(), image_text(6)
    stage_trainable(model, "vl")
    losses = model(objectives.image_text_losses, batch)
    assert set(losses) == {"itc", "itm", "mlm"}
    history = train(model, objectives.image_text_losses, batch, steps=10)
    # From a random init the CLS features start almost equal (layer scale 0.1), so ITC stays
    # near log(batch) for a while; ITM and MLM fall from the first steps.
    assert history[-1] < 0.95 * history[0]


@pytest.mark.slow
def test_retrieval_vqa_and_nlvr2_heads_train():
    model, batch = tiny(), image_text(4)
    history = train(model, objectives.retrieval_losses, {**batch, "idx": torch.tensor([0, 0, 1, 2])}, 6)
    assert history[-1] < history[0]
    vqa = create_model("vlmo_tiny", vqa_answers=5, task_heads=["vqa"])
    targets = objectives.answer_targets(
        [{"red": 1.0}, {"two": 0.6, "2": 0.3}, {"yes": 1.0}, {"unlisted": 1.0}], ["red", "two", "2", "yes", "no"]
    )
    assert targets[1].tolist() == pytest.approx([0, 0.6, 0.3, 0, 0]) and targets[3].sum() == 0
    vqa_batch = {
        "image": batch["image"],
        "question_ids": batch["text_ids"],
        "question_atts": batch["text_atts"],
        "answer_targets": targets,
    }
    history = train(vqa, objectives.vqa_losses, vqa_batch, 8)
    assert history[-1] < history[0]
    with pytest.raises(DataError, match="answer_targets have 3 answers, the VQA head 5"):
        vqa(objectives.vqa_losses, {**vqa_batch, "answer_targets": targets[:, :3]})
    nlvr2 = create_model("vlmo_tiny", task_heads=["nlvr2"])
    nlvr2_batch = {
        "left": batch["image"],
        "right": batch["image"].flip(0),
        "text_ids": batch["text_ids"],
        "text_atts": batch["text_atts"],
        "label": torch.tensor([0, 1, 1, 0]),
    }
    history = train(nlvr2, objectives.nlvr2_losses, nlvr2_batch, 8)
    assert history[-1] < history[0]


def test_task_heads_have_the_official_shapes():
    """vqa: w → 2w → answers; nlvr2: 2w → 2w → 2 (official checkpoints' head weights load as they are)."""
    model = create_model("vlmo_tiny")
    model.add_task_head("vqa")
    model.add_task_head("nlvr2")
    width = model.config.width
    assert [tuple(p.shape) for p in model.vqa_classifier.parameters() if p.dim() == 2] == [
        (2 * width, width),
        (model.config.vqa_answers, 2 * width),
    ]
    assert [tuple(p.shape) for p in model.nlvr2_classifier.parameters() if p.dim() == 2] == [
        (2 * width, 2 * width),
        (2, 2 * width),
    ]
