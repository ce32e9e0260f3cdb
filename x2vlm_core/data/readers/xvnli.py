"""IGLUE XVNLI (``annotations/{language}/{split}.jsonl``): visual entailment over Flickr30K images.

Each line: ``Flikr30kID`` (sic), ``sentence1`` (the premise caption), ``sentence2`` (the hypothesis,
in the file's language), ``gold_label`` (contradiction / entailment / neutral), and often ``pairID``.
One ``visual_entailment`` record per line: ``image_id``, ``sentence`` (the hypothesis, what the
model reads with the image), ``premise``, ``label``, ``language``; the image is
``images/{image_id}.jpg``. Lines without one of the three labels are rejected as ``no_gold_label``.
"""

from __future__ import annotations

from typing import Iterator

from x2vlm_core.data.readers.common import base_record, field, iter_json_lines, key_part, record_key
from x2vlm_core.data.readers.languages import AUTO, language_of
from x2vlm_core.data.sources import Source, SourceFormat

KIND = "visual_entailment"
LABELS = ("contradiction", "entailment", "neutral")
NO_GOLD_LABEL = "no_gold_label"
FORMAT = SourceFormat(("annotations",), ("images",), default_split="test", options={"language": AUTO})


def read(source: Source) -> Iterator[dict]:
    path = source.path("annotations")
    language = language_of(source.options["language"], path)
    for line_number, entry in iter_json_lines(path):
        where = f"line {line_number}"
        image_id = str(field(entry, "Flikr30kID", path, where, (str, int))).removesuffix(".jpg")
        pair = entry.get("pairID")
        ident = key_part(str(pair)) if isinstance(pair, (str, int)) and str(pair) else f"{line_number:09d}"
        record = base_record(
            source,
            record_key(f"xvnli-{language}-{source.given_split}", ident, path),
            KIND,
            source.given_split,
            [source.path("images") / f"{image_id}.jpg"],
        )
        label = field(entry, "gold_label", path, where, str)
        record.update(
            image_id=image_id,
            sentence=field(entry, "sentence2", path, where, str).strip(),
            premise=str(entry.get("sentence1", "")).strip(),
            label=label,
            language=language,
        )
        if label not in LABELS:
            record["reader_reject"] = NO_GOLD_LABEL
        yield record
