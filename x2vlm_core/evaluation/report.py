"""The evaluation report: one self-contained HTML page (images inlined) per evaluated task.

It shows each split's metrics and a sample of predictions the way a person checks them: boxes
drawn on the image for grounding, the top-5 retrieved images per text query, answers and
captions next to their images. The evaluate stage hands the file to KFP as an HTML artifact.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from x2vlm_core.data.transforms import decode_image

THUMBNAIL_SIDE = 160
TRUE_COLOUR, PREDICTED_COLOUR = (20, 170, 60), (220, 30, 30)
SAMPLES_SHOWN = 12
QUERIES_SHOWN = 6

_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:22px} h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}
table.metrics{border-collapse:collapse;margin:8px 0} table.metrics td,table.metrics th{border:1px solid #ccc;padding:3px 8px;text-align:right}
.grid{display:flex;flex-wrap:wrap;gap:14px} .card{width:340px;border:1px solid #ddd;border-radius:6px;padding:8px;font-size:13px}
.card img{display:block;margin-bottom:6px} .row{display:flex;gap:6px;align-items:flex-start;margin:6px 0;flex-wrap:wrap}
.hit{outline:3px solid #14aa3c} .miss{outline:3px solid transparent} .ok{color:#14aa3c;font-weight:600} .bad{color:#dc1e1e;font-weight:600}
.note{color:#8a5a00} .small{font-size:12px;color:#555} .legend span{margin-right:12px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def image_uri(
    data: bytes,
    key: str = "?",
    boxes: Iterable[tuple[list[float], tuple[int, int, int]]] = (),
    side: int = THUMBNAIL_SIDE,
) -> str:
    """A JPEG data URI of the image scaled to ``side`` px (longer side), with ``(xywh box, colour)`` drawn on it."""
    image = decode_image(data, key)
    scale = side / max(image.size)
    image = image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BICUBIC
    )
    draw = ImageDraw.Draw(image)
    for (x, y, w, h), colour in boxes:
        draw.rectangle([x * scale, y * scale, (x + w) * scale, (y + h) * scale], outline=colour, width=2)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=88)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(sample: dict[str, Any], index: int = 0, css: str = "", **kwargs: Any) -> str:
    uri = image_uri(sample["images"][index], sample["key"], **kwargs)
    return f'<img src="{uri}" class="{css}" title="{_e(sample["key"])}">'


def _by_key(samples: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["key"]: s for s in samples}


def _mark(ok: bool) -> str:
    return '<span class="ok">✓</span>' if ok else '<span class="bad">✗</span>'


def grounding_section(samples: list[dict[str, Any]], predictions: list[dict[str, Any]]) -> str:
    by_key = _by_key(samples)
    legend = (
        '<p class="legend"><span style="color:#14aa3c">■ true box</span>'
        '<span style="color:#dc1e1e">■ predicted box</span></p>'
    )
    cards = []
    for row in predictions[:SAMPLES_SHOWN]:
        picture = _img(
            by_key[row["key"]], boxes=[(row["true_bbox"], TRUE_COLOUR), (row["pred_bbox"], PREDICTED_COLOUR)]
        )
        cards.append(
            f'<div class="card">{picture}<b>{_e(row["sentence"])}</b><br>'
            f"IoU {row['iou']:.2f} {_mark(row['iou'] >= 0.5)}</div>"
        )
    return legend + f'<div class="grid">{"".join(cards)}</div>'


def retrieval_section(samples: list[dict[str, Any]], predictions: list[dict[str, Any]]) -> str:
    """Text queries with their top-5 images (the true one outlined green), then image queries with their top-5 texts."""
    by_key = _by_key(samples)
    text_queries = [r for r in predictions if r["direction"] == "text_to_image"][:QUERIES_SHOWN]
    image_queries = [r for r in predictions if r["direction"] == "image_to_text"][:QUERIES_SHOWN]
    parts = ["<h3>Text → image: top 5</h3>"]
    for row in text_queries:
        pictures = "".join(
            _img(by_key[key], css="hit" if key in row["truth"] else "miss", side=110) for key in row["top5"]
        )
        parts.append(
            f"<div><b>{_e(row['query'])}</b> {_mark(row['top5'][:1] == row['truth'][:1])}"
            f'<div class="row">{pictures}</div></div>'
        )
    parts.append('<h3>Image → text: top 5</h3><div class="grid">')
    for row in image_queries:
        texts = "".join(f"<li>{_mark(t in row['truth'])} {_e(t)}</li>" for t in row["top5"])
        parts.append(f'<div class="card">{_img(by_key[row["query"]])}<ol>{texts}</ol></div>')
    return "".join(parts) + "</div>"


def vqa_section(samples: list[dict[str, Any]], predictions: list[dict[str, Any]]) -> str:
    by_key = _by_key(samples)
    cards = []
    for row in predictions[:SAMPLES_SHOWN]:
        score = f" — accuracy {row['accuracy']:.2f}" if "accuracy" in row else ""
        top = ", ".join(f"{_e(a)} ({p:.2f})" for a, p in row["top5"])
        humans = (
            f'<div class="small">humans: {_e(", ".join(row["human_answers"]))}</div>' if "human_answers" in row else ""
        )
        cards.append(
            f'<div class="card">{_img(by_key[row["key"]])}<b>Q: {_e(row["question"])}</b><br>'
            f'A: {_e(row["answer"])}{score}<div class="small">top 5: {top}</div>{humans}</div>'
        )
    return f'<div class="grid">{"".join(cards)}</div>'


def captioning_section(samples: list[dict[str, Any]], predictions: list[dict[str, Any]]) -> str:
    by_key = _by_key(samples)
    cards = []
    for row in predictions[:SAMPLES_SHOWN]:
        references = "".join(f"<li>{_e(r)}</li>" for r in row["references"])
        cards.append(
            f'<div class="card">{_img(by_key[row["key"]])}<b>{_e(row["caption"]) or "<i>(empty)</i>"}</b>'
            f'<div class="small">references:<ul>{references}</ul></div></div>'
        )
    return f'<div class="grid">{"".join(cards)}</div>'


def nlvr2_section(samples: list[dict[str, Any]], predictions: list[dict[str, Any]]) -> str:
    by_key = _by_key(samples)
    cards = []
    for row in predictions[:SAMPLES_SHOWN]:
        sample = by_key[row["key"]]
        cards.append(
            f'<div class="card"><div class="row">{_img(sample, 0, side=120)}{_img(sample, 1, side=120)}</div>'
            f"<b>{_e(row['sentence'])}</b><br>predicted {row['predicted']}, true {row['label']} "
            f"{_mark(row['predicted'] == row['label'])}</div>"
        )
    return f'<div class="grid">{"".join(cards)}</div>'


def entailment_section(samples: list[dict[str, Any]], predictions: list[dict[str, Any]]) -> str:
    """Visual entailment: the image, the hypothesis, the predicted and the true label."""
    by_key = _by_key(samples)
    cards = []
    for row in predictions[:SAMPLES_SHOWN]:
        cards.append(
            f'<div class="card">{_img(by_key[row["key"]])}<b>{_e(row["sentence"])}</b><br>'
            f"predicted {_e(row['predicted'])}, true {_e(row['label'])} "
            f"{_mark(row['predicted'] == row['label'])}</div>"
        )
    return f'<div class="grid">{"".join(cards)}</div>'


def video_qa_section(samples: list[dict[str, Any]], predictions: list[dict[str, Any]]) -> str:
    by_key = _by_key(samples)
    cards = []
    for row in predictions[:SAMPLES_SHOWN]:
        sample = by_key[row["key"]]
        frames = "".join(_img(sample, i, side=70) for i in range(min(4, len(sample["images"]))))
        cards.append(
            f'<div class="card"><div class="row">{frames}</div><b>Q: {_e(row["question"])}</b><br>'
            f"A: {_e(row['answer'])} (true: {_e(row['truth'])}) {_mark(row['answer'] == row['truth'])}</div>"
        )
    return f'<div class="grid">{"".join(cards)}</div>'


class HtmlReport:
    """Collects each split's metrics and sample section; ``write`` renders one page."""

    def __init__(self, task: str, model: str) -> None:
        self.task, self.model = task, model
        self.parts: list[str] = []

    def add_split(self, split: str, metrics: dict[str, float], unavailable: dict[str, str], section: str) -> None:
        rows = "".join(f"<tr><th>{_e(name)}</th><td>{value:.4f}</td></tr>" for name, value in metrics.items())
        notes = "".join(f'<p class="note">{_e(name)}: {_e(reason)}</p>' for name, reason in unavailable.items())
        self.parts.append(f'<h2>{_e(split)}</h2><table class="metrics">{rows}</table>{notes}{section}')

    def add_language_table(
        self, split: str, per_language: dict[str, dict[str, float]], average: dict[str, float]
    ) -> None:
        """One row per language and one per metric column, then the average over the target languages."""
        names = sorted({name for metrics in per_language.values() for name in metrics})
        header = "".join(f"<th>{_e(name)}</th>" for name in names)

        def row(label: str, metrics: dict[str, float]) -> str:
            cells = "".join(f"<td>{metrics[name]:.4f}</td>" if name in metrics else "<td>–</td>" for name in names)
            return f"<tr><th>{_e(label)}</th>{cells}</tr>"

        rows = "".join(row(language, metrics) for language, metrics in per_language.items())
        if average:
            rows += row("average (non-English)", average)
        self.parts.append(
            f'<h2>{_e(split)}: per language</h2><table class="metrics languages">'
            f"<tr><th>language</th>{header}</tr>{rows}</table>"
        )

    def render(self) -> str:
        title = f"X²-VLM evaluation: {self.task}"
        return (
            f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{_e(title)}</h1>"
            f'<p class="small">model: {_e(self.model)}</p>{"".join(self.parts)}</body></html>'
        )

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.render(), encoding="utf-8")
        return path
