"""CCLM: presets, the official key layout, X²-VLM checkpoints mapped onto it, its objectives, the XLM-R
tokenizer (a sentencepiece model trained here on generated multilingual text), its batches and the
per-language protocol helpers."""

from __future__ import annotations

import io
import random

import pytest
import torch
import yaml
from PIL import Image

from x2vlm_core.config_io import to_dict
from x2vlm_core.data.augment import AugmentConfig
from x2vlm_core.data.masking import MaskingConfig
from x2vlm_core.data.synthetic import translate
from x2vlm_core.errors import ConfigError, DataError
from x2vlm_core.evaluation.multilingual import accuracy_by_language, few_shot_sample, language_report
from x2vlm_core.families import config_from_dict, create_model, model_config, text_encoder_for
from x2vlm_core.families.cclm.checkpoint import adapt_cclm_state
from x2vlm_core.families.cclm.collate import (
    CAPTION_MASKING,
    PARALLEL_MAX_TOKENS,
    MultilingualTextEncoder,
    parallel_text_batch,
    pretrain_multilingual_batch,
    span_word_ids,
)
from x2vlm_core.families.cclm.config import CCLMConfig
from x2vlm_core.families.cclm.model import CCLM
from x2vlm_core.families.cclm.objectives import image_caption_losses, parallel_text_losses
from x2vlm_core.release.model_folder import init_from, load_model_dir, read_model_config, save_model_dir
from x2vlm_core.run_config import load_run_config
from x2vlm_core.text.xlmr import (
    SENTENCEPIECE_MODEL,
    build_multilingual_tokenizer,
    train_sentencepiece,
)
from x2vlm_core.train.pretrain_objective import region_text_losses

WORDS = (
    "a red blue green yellow circle square triangle left right of above below the large small two three shapes picture"
).split()


def english(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9)))


def german_like(text: str) -> str:
    """A second made-up language: each word reversed and suffixed, so it shares no pieces with English."""
    return " ".join(word[::-1] + "en" for word in text.split())


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> str:
    rng = random.Random(0)
    texts = [english(rng) for _ in range(300)]
    folder = train_sentencepiece(
        texts + [translate(t) for t in texts] + [german_like(t) for t in texts],
        tmp_path_factory.mktemp("spm"),
        vocab_size=400,
    )
    return str(folder)


@pytest.fixture(scope="module")
def tiny(tokenizer) -> CCLM:
    torch.manual_seed(0)
    return create_model("cclm_tiny", tokenizer=tokenizer).eval()


def jpeg(colour=(200, 20, 20)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (80, 60), colour).save(out, "JPEG")
    return out.getvalue()


CAPTIONS = [
    "a red circle left of a blue square",
    "two green triangles",
    "a small yellow square above a circle",
    "three shapes in the picture",
]


def caption_samples(languages=("en", "xx", "de")):
    makers = {"en": lambda c: c, "xx": translate, "de": german_like}
    return [
        {
            "key": f"img{i}",
            "seed": f"s{i}",
            "images": [jpeg((40 * i, 90, 200))],
            "meta": {"captions": [makers[lang](c) for lang in languages], "caption_languages": list(languages)},
        }
        for i, c in enumerate(CAPTIONS)
    ]


def pair_samples():
    return [
        {"key": f"pair{i}", "seed": f"p{i}", "meta": {"source_text": c, "target_text": translate(c)}}
        for i, c in enumerate(CAPTIONS)
    ]


# ---- presets and the registry -------------------------------------------------------------------------


def official_parameter_count(
    vision_width,
    depth,
    vision_heads,
    hidden,
    layers,
    intermediate,
    cross_intermediate,
    vocab=250002,
    positions=514,
    cross_layers=6,
    grid=14,
    patch=16,
    embed=256,
) -> int:
    """The official XVLMPlusBase's parameters, counted from its modules' shapes (no model built)."""
    w, h = vision_width, hidden
    block = (
        2 * w
        + 3 * w * w
        + 2 * w
        + ((2 * grid - 1) ** 2 + 3) * vision_heads
        + w * w
        + w
        + 2 * w
        + (8 * w * w + 5 * w)
        + 2 * w
    )  # norm1, qkv, q/v bias, position table, proj, norm2, mlp, gamma_1/2
    vision = 3 * patch * patch * w + w + w + depth * block + 2 * w  # patch embed, cls token, blocks, fc_norm
    text_layer = 4 * (h * h + h) + 2 * h + (2 * h * intermediate + intermediate + h) + 2 * h
    text = vocab * h + positions * h + h + 2 * h + layers * text_layer  # XLM-R: one token type, no pooler
    cross_layer = (
        4 * (h * h + h)
        + 2 * h
        + 2 * (h * h + h)
        + 2 * (w * h + h)
        + 2 * h
        + (2 * h * cross_intermediate + cross_intermediate + h)
        + 2 * h
    )
    mlp = lambda out: 2 * h * h + 2 * h + 4 * h + 2 * h * out + out  # noqa: E731
    heads = (w * embed + embed) + (h * embed + embed) + 1 + mlp(2) + mlp(4) + (h * h + h + 2 * h + vocab * h + vocab)
    return vision + text + cross_layers * cross_layer + heads


@pytest.mark.parametrize(
    "preset,args,millions",
    [
        ("cclm_x2vlm_base", (768, 12, 12, 768, 12, 3072, 3072), 615.54),
        ("cclm_x2vlm_large", (1024, 24, 16, 1024, 24, 4096, 4096), 1225.07),
    ],
)
def test_preset_sizes_are_the_official_counts(preset, args, millions):
    with torch.device("meta"):
        model = create_model(preset)
    count = sum(p.numel() for p in model.parameters())
    assert count == official_parameter_count(*args)
    assert round(count / 1e6, 2) == millions


def test_presets_and_saved_configs_go_through_the_registry(tmp_path):
    config, _ = load_run_config(
        None,
        preset="cclm_tiny",
        overrides=["model.cross.num_layers=3", "model.text_encoder.config.num_hidden_layers=1"],
    )
    assert isinstance(config, CCLMConfig) and config.cross.num_layers == 3 and config.family == "cclm"
    assert config.text.num_layers == 3 and config.text.fusion_start_at == 0 and config.vocab_size == 512
    saved = yaml.safe_load(yaml.safe_dump(to_dict(config)))
    assert config_from_dict(saved, where="config.yaml") == config
    model = create_model(config)
    assert len(model.text_encoder.encoder.layer) == 1 and len(model.cross_encoder.encoder.layer) == 3
    with pytest.raises(ConfigError, match="text_encoder.arch 'gpt2' is not supported"):
        model_config("cclm_tiny", text_encoder={"arch": "gpt2"})
    with pytest.raises(ConfigError, match="max_tokens 200 exceeds the 128 positions"):
        model_config("cclm_tiny", max_tokens=200)
    with pytest.raises(ConfigError, match="unknown model family 'clip'"):
        config_from_dict({**saved, "family": "clip"}, where="config.yaml")
    with pytest.raises(ConfigError, match="no config.json"):
        model_config("cclm_tiny", text_encoder=str(tmp_path))


def test_any_bert_or_roberta_config_folder_can_be_the_text_encoder(tmp_path):
    from transformers import RobertaConfig

    RobertaConfig(
        vocab_size=300,
        hidden_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=96,
        max_position_embeddings=40,
    ).save_pretrained(tmp_path)
    config = model_config("cclm_tiny", text_encoder=str(tmp_path))
    assert config.text_encoder.arch == "roberta" and config.text_encoder.weights == ""
    assert config.vocab_size == 300 and "architectures" not in config.text_encoder.config
    model = create_model(config)
    assert (
        type(model.text_encoder).__name__ == "RobertaModel" and model.mlm_head.predictions.decoder.out_features == 300
    )
    assert model.cross_encoder.encoder.layer[0].crossattention.self.key.in_features == config.vision.width


# ---- X²-VLM checkpoints -------------------------------------------------------------------------------


def test_an_x2vlm_checkpoint_fills_the_cross_encoder_vision_and_heads(tmp_path, tokenizer):
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    torch.manual_seed(1)
    x2vlm = create_model("x2vlm_tiny").eval()
    save_model_dir(x2vlm, tmp_path / "x2vlm")
    # An XLM-R-shaped checkpoint folder, as transformers writes one (keys roberta.*, lm_head.*).
    text_config = model_config("cclm_tiny").text_encoder.config
    xlmr = XLMRobertaForMaskedLM(XLMRobertaConfig(**text_config))
    xlmr.save_pretrained(tmp_path / "xlmr")
    model = create_model("cclm_tiny", tokenizer=tokenizer, text_encoder={"weights": str(tmp_path / "xlmr")}).eval()
    left = init_from(model, tmp_path / "x2vlm")

    state, official = model.state_dict(), x2vlm.state_dict()
    assert left == ["mlm_head.predictions.bias", "mlm_head.predictions.decoder.weight"]  # a new vocabulary's decoder
    for key, value in official.items():
        for layer in (2, 3):  # x2vlm_tiny's fusion layers
            prefix = f"text_encoder.bert.encoder.layer.{layer}."
            if key.startswith(prefix):
                assert torch.equal(state[f"cross_encoder.encoder.layer.{layer - 2}." + key[len(prefix) :]], value), key
        if key.startswith(("vision_encoder.", "vision_proj", "text_proj", "itm_head", "bbox_head", "temp")):
            assert torch.equal(state[key], value), key
    assert torch.equal(
        state["mlm_head.predictions.transform.dense.weight"],
        official["text_encoder.cls.predictions.transform.dense.weight"],
    )
    for key, value in xlmr.roberta.state_dict().items():
        if not key.endswith(("position_ids", "token_type_ids")):
            assert torch.equal(state["text_encoder." + key], value), key
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.get_vision_embeds(image)[0], x2vlm.get_vision_embeds(image)[0])


def test_with_a_bert_text_encoder_kept_the_mapped_model_computes_what_x2vlm_does():
    """``replace_text_encoder=False``: X²-VLM's own text layers fill a BERT text encoder, so every output matches."""
    torch.manual_seed(2)
    x2vlm = create_model("x2vlm_tiny").eval()
    bert = {
        "vocab_size": 30522,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "max_position_embeddings": 64,
        "type_vocab_size": 2,
        "pad_token_id": 0,
        "layer_norm_eps": 1e-12,
    }  # (the preset's other XLM-R fields merge in; none changes a BERT)
    model = create_model("cclm_tiny", text_encoder={"arch": "bert", "config": bert}).eval()
    state = adapt_cclm_state(model, x2vlm.state_dict(), replace_text_encoder=False)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not missing and not unexpected
    ids = torch.tensor([[101, 2417, 4418, 102, 0], [101, 1037, 2665, 3392, 102]])
    atts = (ids != 0).long()
    image = torch.randn(2, 3, 64, 64)
    masked_pos = torch.tensor([[1, 2], [2, 3]])
    with torch.no_grad():
        image_embeds, image_atts = x2vlm.get_vision_embeds(image)
        for net in (x2vlm, model):
            net.out = (
                net.get_text_embeds(ids, atts),
                net.itm_logits(image_embeds, image_atts, net.get_text_embeds(ids, atts), atts),
                net.mlm_logits(ids, atts, masked_pos, image_embeds, image_atts),
            )
    for ours, theirs in zip(model.out, x2vlm.out):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_an_official_cclm_file_loads_as_it_is(tmp_path, tiny):
    """XVLMPlusBase's own layout: a 0-dim temp, and the position ids buffer older transformers saved."""
    state = {k: v.clone() for k, v in tiny.state_dict().items()}
    state["temp"] = state["temp"].reshape(())
    state["text_encoder.embeddings.position_ids"] = torch.arange(130)[None]
    torch.save({"model": state, "config": {}}, tmp_path / "cclm_official.th")
    model = create_model("cclm_tiny")
    assert init_from(model, tmp_path / "cclm_official.th") == []
    for (name, ours), theirs in zip(model.state_dict().items(), tiny.state_dict().values()):
        assert torch.equal(ours, theirs), name


# ---- tokenizer and model folders -------------------------------------------------------------------------


def test_sentencepiece_tokenizer_has_xlmr_special_ids_and_travels_with_the_model(tmp_path, tokenizer, tiny):
    tok = build_multilingual_tokenizer(tokenizer)
    assert (tok.cls_token_id, tok.pad_token_id, tok.sep_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.mask_token_id == len(tok) - 1 and len(tok) <= tiny.config.vocab_size
    ids = tok(["a red circle", translate("a red circle")])["input_ids"]
    assert ids[0][0] == 0 and ids[0][-1] == 2 and 3 not in ids[0] + ids[1]  # no unknown pieces
    assert set(ids[0][1:-1]).isdisjoint(ids[1][1:-1])  # the two languages share no piece

    folder = save_model_dir(tiny, tmp_path / "cclm")
    assert (folder / "tokenizer" / SENTENCEPIECE_MODEL).is_file() and (folder / "tokenizer/tokenizer.json").is_file()
    assert read_model_config(folder).tokenizer == str(folder / "tokenizer")
    loaded = load_model_dir(folder).eval()
    assert isinstance(loaded, CCLM)
    assert (
        build_multilingual_tokenizer(loaded.config.tokenizer)(["two green triangles"])["input_ids"]
        == tok(["two green triangles"])["input_ids"]
    )
    for (name, ours), theirs in zip(tiny.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(ours, theirs), name
    with pytest.raises(ConfigError, match="model.tokenizer is empty"):
        text_encoder_for(model_config("cclm_tiny"))


# ---- batches ---------------------------------------------------------------------------------------------


def test_span_masking_groups_tokens_and_leaves_special_tokens_alone():
    groups = span_word_ids([None, 0, 0, 1, 2, 3, 4, 5, None], random.Random(3), skipgram_prob=1.0, skipgram_size=3)
    assert groups[0] is None and groups[-1] is None
    spans = [groups[1:-1].count(g) for g in sorted(set(groups[1:-1]))]
    assert all(2 <= n <= 3 for n in spans[:-1]) and sum(spans) == 7
    assert span_word_ids([None, 0, 1, None], random.Random(0), skipgram_prob=0.0) == [None, 0, 1, None]


def test_multilingual_caption_batches_pick_one_language_per_image(tiny):
    text = text_encoder_for(tiny.config)
    assert isinstance(text, MultilingualTextEncoder)
    samples = caption_samples()
    batch = pretrain_multilingual_batch(samples, text, 64, CAPTION_MASKING, AugmentConfig(), languages=("en",))
    english_ids, _, _ = text(CAPTIONS)
    assert torch.equal(batch["text_ids"], english_ids)  # English only: the zero-shot training set
    assert batch["image"].shape == (4, 3, 64, 64)
    picked = batch["masked_ids"] != -100
    rows = torch.arange(4)[:, None].expand_as(batch["masked_pos"])
    assert torch.equal(batch["text_ids"][rows[picked], batch["masked_pos"][picked]], batch["masked_ids"][picked])
    assert (batch["text_ids_masked"][rows[picked], batch["masked_pos"][picked]] != batch["masked_ids"][picked]).any()
    assert not {0, 1, 2} & set(batch["masked_ids"][picked].tolist())  # no special token is masked

    two = pretrain_multilingual_batch(samples, text, 64, CAPTION_MASKING, AugmentConfig(), second_language=True)
    again = pretrain_multilingual_batch(samples, text, 64, CAPTION_MASKING, AugmentConfig(), second_language=True)
    assert all(torch.equal(two[k], again[k]) for k in two)  # the samples' seeds decide everything
    assert not torch.equal(two["text_ids"], two["text_ids_2"][:, : two["text_ids"].shape[1]])
    with pytest.raises(DataError, match=r"img0: no caption in \['ja'\]"):
        pretrain_multilingual_batch(samples, text, 64, CAPTION_MASKING, AugmentConfig(), languages=("ja",))
    with pytest.raises(DataError, match="captions in 'en' only"):
        pretrain_multilingual_batch(
            caption_samples(("en",)), text, 64, CAPTION_MASKING, AugmentConfig(), second_language=True
        )


def test_parallel_batches_swap_the_views_and_mask_the_first(tiny):
    text = text_encoder_for(tiny.config, PARALLEL_MAX_TOKENS)
    samples = [{**sample, "key": f"pair{i}", "seed": f"p{i}"} for i, sample in enumerate(pair_samples() * 4)]
    batch = parallel_text_batch(samples, text, MaskingConfig(0.4, 16))
    english_first = {tuple(row[row != 1].tolist()) for row in text([s["meta"]["source_text"] for s in samples])[0]}
    firsts = [tuple(row[row != 1].tolist()) in english_first for row in batch["text_ids"]]
    assert any(firsts) and not all(firsts)  # each order shows up (p = 0.5)
    assert batch["masked_pos"].shape[1] == 16 and "text_ids_2" in batch and "text_atts_2" in batch
    with pytest.raises(DataError, match="non-empty source_text and target_text"):
        parallel_text_batch([{"key": "k", "meta": {"source_text": "a red circle", "target_text": " "}}], text)


# ---- objectives -------------------------------------------------------------------------------------------


def test_image_caption_objective_and_x2vlm_region_objective_run_on_cclm(tiny):
    tiny.train()
    try:
        batch = pretrain_multilingual_batch(
            caption_samples(), text_encoder_for(tiny.config), 64, CAPTION_MASKING, AugmentConfig(), second_language=True
        )
        out = image_caption_losses(tiny, batch)
        assert set(out) == {"itc", "ttc", "itm", "mlm"} and all(torch.isfinite(v) for v in out.values())
        text = text_encoder_for(tiny.config)
        region = {
            "image": torch.randn(2, 3, 64, 64),
            "idx_to_group_img": torch.tensor([0, 0, 1, 1]),
            "image_atts": torch.ones(4, 65, dtype=torch.long),
            "target_bbox": torch.rand(4, 4) * 0.5 + 0.25,
            "is_image": torch.tensor([1, 0, 0, 0]),
            **text.masked(CAPTIONS, CAPTION_MASKING, random.Random(0)),
        }
        region_out = region_text_losses(tiny, region)
        assert {"region_itc", "region_itm", "region_mlm", "region_bbox", "region_giou"} == set(region_out)
        sum(region_out.values()).backward()
        assert tiny.bbox_head[0].weight.grad is not None
    finally:
        tiny.zero_grad(set_to_none=True)
        tiny.eval()


def test_parallel_text_objectives_align_the_two_views(tokenizer):
    torch.manual_seed(4)
    model = create_model("cclm_tiny", tokenizer=tokenizer)
    text = text_encoder_for(model.config, PARALLEL_MAX_TOKENS)
    batch = parallel_text_batch(pair_samples(), text)

    model.eval()
    with torch.no_grad():  # conditional MLM reads the other view through the cross encoder
        embeds_2 = model.get_text_embeds(batch["text_ids_2"], batch["text_atts_2"])
        args = (batch["text_ids_masked"], batch["text_atts"], batch["masked_pos"])
        with_view = model.mlm_logits(*args, embeds_2, batch["text_atts_2"])
        other = model.mlm_logits(*args, embeds_2.flip(0), batch["text_atts_2"].flip(0))
    assert not torch.allclose(with_view, other)

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    first = None
    for _ in range(40):
        out = parallel_text_losses(model, batch)
        first = first if first is not None else {k: v.item() for k, v in out.items()}
        optimizer.zero_grad()
        sum(out.values()).backward()
        optimizer.step()
        model.clamp_temp()
    assert set(out) == {"ttc", "ttm", "cmlm"}
    assert model.vision_encoder.blocks[0].attn.qkv.weight.grad is None  # no image in this objective
    assert out["cmlm"].item() < first["cmlm"] / 2
    model.eval()
    with torch.no_grad():  # each sentence now finds its own translation among the others
        feat = model.get_text_feat(model.get_text_embeds(batch["text_ids"], batch["text_atts"]))
        feat_2 = model.get_text_feat(model.get_text_embeds(batch["text_ids_2"], batch["text_atts_2"]))
    assert torch.equal((feat @ feat_2.t()).argmax(dim=1), torch.arange(4))

    narrow = create_model("cclm_tiny", tokenizer=tokenizer, vision={"width": 32, "num_heads": 4})
    with pytest.raises(ConfigError, match="text encoder as wide as the vision encoder"):
        parallel_text_losses(narrow, batch)


# ---- the cross-lingual protocol -----------------------------------------------------------------------------


def test_per_language_accuracy_and_the_average_are_computed_by_hand():
    predictions = [1, 0, 2, 2, 1, 0, 0]
    labels = [1, 1, 2, 2, 0, 0, 1]
    languages = ["en", "en", "de", "de", "fr", "fr", "fr"]
    report = accuracy_by_language(predictions, labels, languages, average_over=["de", "fr"])
    # en: 1/2, de: 2/2, fr: 1/3 right; the zero-shot average leaves English out: (100 + 33.33) / 2.
    assert report == pytest.approx(
        {"de_accuracy": 100.0, "en_accuracy": 50.0, "fr_accuracy": 100 / 3, "avg_accuracy": (100 + 100 / 3) / 2}
    )
    retrieval = language_report({"de": {"r1": 10.0, "r5": 30.0}, "ja": {"r1": 20.0}})
    assert retrieval == {"de_r1": 10.0, "de_r5": 30.0, "ja_r1": 20.0, "avg_r1": 15.0}  # r5 is not in every language
    with pytest.raises(DataError, match=r"cannot average over \['zh'\]"):
        language_report({"de": {"r1": 1.0}}, average_over=["zh"])


def test_few_shot_sampling_is_n_per_language_seeded_and_order_free():
    records = [{"key": f"{lang}-{i}", "language": lang} for lang in ("de", "id", "tr") for i in range(10)]
    shots = few_shot_sample(records, 3, seed=1)
    assert [r["language"] for r in shots] == ["de"] * 3 + ["id"] * 3 + ["tr"] * 3
    assert shots == few_shot_sample(list(reversed(records)), 3, seed=1)
    assert shots != few_shot_sample(records, 3, seed=2)
    only_tr = few_shot_sample(records, 3, seed=1, languages=["tr"])
    assert only_tr == shots[6:]  # each language draws on its own
    with pytest.raises(DataError, match="'de' has 10 training examples, fewer than 11 shots"):
        few_shot_sample(records, 11, seed=0)
