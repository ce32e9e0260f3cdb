"""Does cross-view language modeling transfer across languages? cclm_tiny on the shapes world, CPU minutes.

    .venv/bin/python benchmarks/cclm_zero_shot.py --steps 600

The shapes world's captions in English and in "shapes-speak" (``synthetic.translate``: every
word replaced by a made-up word, so the two languages share no token). A sentencepiece
tokenizer is trained on both. cclm_tiny is pre-trained from scratch twice, with plain torch
AdamW, on the same image-caption batches with **English captions only**:

- ``captions only``: ITC + ITM + MLM on images with English captions;
- ``+ parallel text``: the same, alternating with shapes-speak/English sentence pairs (TTC, TTM,
  conditional MLM) made from captions of *other* scenes, never paired with an image.

Then zero-shot image-text retrieval on held-out scenes, by ITC similarity alone, in each
language: English (the training language) and shapes-speak (never seen with an image).
Prints R@1, R@5 and the mean recall per language (``multilingual.language_report``) and chance.
Results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import io
import random
import tempfile
import time

import torch
from record import append_entry, command_line

from x2vlm_core.data.augment import AugmentConfig
from x2vlm_core.data.synthetic import CAPTION_TEMPLATES, SceneSampler, render, translate
from x2vlm_core.data.transforms import decode_image, image_to_tensor
from x2vlm_core.evaluation.metrics import retrieval_recall
from x2vlm_core.evaluation.multilingual import language_report
from x2vlm_core.families import create_model, text_encoder_for
from x2vlm_core.families.cclm.collate import (
    CAPTION_MASKING,
    PARALLEL_MAX_TOKENS,
    parallel_text_batch,
    pretrain_multilingual_batch,
)
from x2vlm_core.families.cclm.objectives import image_caption_losses, parallel_text_losses
from x2vlm_core.text.xlmr import train_sentencepiece

LANGUAGES = {"en": lambda text: text, "xx": translate}
IMAGE_RES = 64
# Light augmentation: a tiny model on a few hundred scenes learns faster without heavy crops.
AUGMENT = AugmentConfig(crop_scale=[0.8, 1.0], randaug_ops=1, randaug_magnitude=3)


def scene_captions(scene, rng: random.Random) -> list[str]:
    captions = []
    for template in CAPTION_TEMPLATES:
        order = list(scene.shapes)
        rng.shuffle(order)
        captions.append(template(scene, order))
    return captions


def jpeg(scene) -> bytes:
    out = io.BytesIO()
    render(scene).save(out, "JPEG", quality=90)
    return out.getvalue()


def make_world(num_train: int, num_test: int, num_pairs: int, seed: int):
    rng = random.Random(seed)
    sampler = SceneSampler(rng)

    def samples(count: int, prefix: str):
        out = []
        for i in range(count):
            scene = sampler.sample(IMAGE_RES, IMAGE_RES)
            captions = scene_captions(scene, rng)
            out.append(
                {
                    "key": f"{prefix}{i}",
                    "seed": f"{prefix}{i}",
                    "images": [jpeg(scene)],
                    "meta": {
                        "captions": [make(c) for c in captions for make in LANGUAGES.values()],
                        "caption_languages": [lang for _ in captions for lang in LANGUAGES],
                    },
                }
            )
        return out

    train, test = samples(num_train, "train"), samples(num_test, "test")
    pairs = []
    for i in range(num_pairs):  # captions of scenes that are never shown as images
        caption = rng.choice(scene_captions(sampler.sample(IMAGE_RES, IMAGE_RES), rng))
        pairs.append(
            {"key": f"pair{i}", "seed": f"pair{i}", "meta": {"source_text": translate(caption), "target_text": caption}}
        )
    return train, test, pairs


@torch.no_grad()
def retrieval_by_language(model, test, text) -> dict[str, dict[str, float]]:
    model.eval()
    images = torch.stack([image_to_tensor(decode_image(s["images"][0], s["key"]), IMAGE_RES) for s in test])
    image_feat = model.get_image_feat(model.get_vision_embeds(images)[0])
    results = {}
    for language in LANGUAGES:
        # One caption per image (the first template), in this language.
        captions = [
            next(c for c, tag in zip(s["meta"]["captions"], s["meta"]["caption_languages"]) if tag == language)
            for s in test
        ]
        ids, atts, _ = text(captions)
        text_feat = model.get_text_feat(model.get_text_embeds(ids, atts))
        scores = (image_feat @ text_feat.t()).numpy()
        recall = retrieval_recall(scores, scores.T, list(range(len(test))), [[i] for i in range(len(test))])
        results[language] = {name: 100 * recall[name] for name in ("txt_r1", "img_r1", "txt_r5", "img_r5", "r_mean")}
    model.train()
    return results


def train(train_set, pairs, tokenizer: str, steps: int, batch_size: int, with_parallel: bool, seed: int):
    torch.manual_seed(seed)
    model = create_model("cclm_tiny", tokenizer=tokenizer)
    captions_text = text_encoder_for(model.config)
    pairs_text = text_encoder_for(model.config, PARALLEL_MAX_TOKENS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=0.01)
    rng = random.Random(seed)
    first = last = None
    for step in range(steps):
        for group in optimizer.param_groups:  # linear warmup over the first tenth, then linear decay
            group["lr"] = 1e-3 * min((step + 1) / max(1, steps // 10), (steps - step) / (steps - steps // 10))
        chosen = rng.sample(train_set, batch_size)
        # A new seed per step: a sample's caption choice, crop and masks change each time it is drawn.
        chosen = [{**s, "seed": f"{s['key']}:{step}"} for s in chosen]
        batch = pretrain_multilingual_batch(
            chosen, captions_text, IMAGE_RES, CAPTION_MASKING, AUGMENT, languages=("en",)
        )
        losses = image_caption_losses(model, batch)
        if with_parallel:
            pair_batch = [{**p, "seed": f"{p['key']}:{step}"} for p in rng.sample(pairs, batch_size)]
            losses.update(parallel_text_losses(model, parallel_text_batch(pair_batch, pairs_text)))
        loss = sum(losses.values())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        model.clamp_temp()
        values = {k: round(v.item(), 3) for k, v in losses.items()}
        first, last = first or values, values
    return model, captions_text, first, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=24)
    parser.add_argument("--train-images", type=int, default=480)
    parser.add_argument("--test-images", type=int, default=100)
    parser.add_argument("--pairs", type=int, default=960)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to docs/benchmarks.md")
    args = parser.parse_args()
    torch.set_num_threads(1)

    train_set, test, pairs = make_world(args.train_images, args.test_images, args.pairs, args.seed)
    with tempfile.TemporaryDirectory() as folder:
        texts = [c for s in train_set for c in s["meta"]["captions"]]
        texts += [t for p in pairs for t in (p["meta"]["source_text"], p["meta"]["target_text"])]
        tokenizer = str(train_sentencepiece(texts, folder, vocab_size=1000, seed=args.seed))
        chance = 100 / args.test_images
        lines = [f"chance: R@1 {chance:.1f}, R@5 {5 * chance:.1f}, r_mean (R@1/5/10 both ways) {16 / 3 * chance:.1f}"]
        for with_parallel in (False, True):
            start = time.time()
            model, text, first, last = train(
                train_set, pairs, tokenizer, args.steps, args.batch_size, with_parallel, args.seed
            )
            report = language_report(retrieval_by_language(model, test, text), average_over=["xx"])
            name = "+ parallel text" if with_parallel else "captions only"
            lines.append(f"{name} ({time.time() - start:.0f} s): losses first {first}")
            lines.append(f"{' ' * len(name)}   losses last  {last}")
            lines.append(f"{' ' * len(name)}   retrieval    " + ", ".join(f"{k} {v:.1f}" for k, v in report.items()))
    printed = "\n".join(lines)
    print(printed)
    if not args.no_record:
        append_entry(
            "CCLM zero-shot cross-lingual transfer on the shapes world, CPU",
            command_line(),
            printed,
            notes=[
                "Image-caption batches hold English captions only; xx (shapes-speak, no token shared with English) "
                "is seen only in sentence pairs. Retrieval: one caption per held-out image, ITC similarity alone.",
            ],
        )


if __name__ == "__main__":
    main()
