"""Parallel sentences as tab-separated lines (WikiMatrix: ``score<TAB>source<TAB>target``, or ``source<TAB>target``).

One ``parallel_text`` record per line: ``source_text``, ``target_text``, ``source_language``,
``target_language`` (from ``language_pair``, or the file name as WikiMatrix writes it:
``WikiMatrix.de-en.tsv.gz``) and ``score`` when the file has one; no images. Files may be gzipped;
a folder is read file by file. Lines scoring below ``min_score`` (WikiMatrix's margin score; its
authors suggest 1.04) are rejected as ``below_min_score``, pairs with an empty side as ``empty_caption``.
"""

from __future__ import annotations

from typing import Iterator

from x2vlm_core.data.readers.common import EMPTY_CAPTION, base_record, key_part, open_text, record_key
from x2vlm_core.data.readers.languages import AUTO, language_pair_of
from x2vlm_core.data.sources import Source, SourceFormat
from x2vlm_core.errors import DataError
from x2vlm_core.gcs_path import AnyPath, as_path

KIND = "parallel_text"
BELOW_MIN_SCORE = "below_min_score"
FORMAT = SourceFormat(
    (), (), default_split="train", files_or_folders=("data",), options={"language_pair": AUTO, "min_score": 0.0}
)
__all__ = ["FORMAT", "parts", "read"]


def parts(source: Source) -> list[str]:
    files = [str(path) for path in source.files("data")]
    if not files:
        raise DataError(f"{source.path('data')}: an empty folder; point 'data' at the parallel .tsv(.gz) file(s)")
    return files


def _lines(path: AnyPath) -> Iterator[tuple[int, str]]:
    try:
        with open_text(path) as handle:
            for line_number, line in enumerate(handle, start=1):
                yield line_number, line.rstrip("\r\n")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; re-save it as UTF-8") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot be read ({exc}); re-download the file") from None


def read(source: Source, part: str | None = None) -> Iterator[dict]:
    min_score = source.options["min_score"]
    for name in [part] if part else parts(source):
        path = as_path(name)
        source_language, target_language = language_pair_of(source.options["language_pair"], path)
        stem = key_part(path.name.removesuffix(".gz").removesuffix(".tsv").removesuffix(".txt"))
        for line_number, line in _lines(path):
            if not line.strip():
                continue
            columns = line.split("\t")
            if len(columns) not in (2, 3):
                raise DataError(
                    f"{path}: line {line_number} has {len(columns)} tab-separated columns, "
                    "expected 3 (score, source, target) or 2 (source, target)"
                )
            score = None
            if len(columns) == 3:
                try:
                    score = float(columns[0])
                except ValueError:
                    raise DataError(
                        f"{path}: line {line_number} starts with {columns[0]!r}, expected the pair's score"
                    ) from None
            record = base_record(
                source, record_key("para", f"{stem}-{line_number:09d}", path), KIND, source.given_split, []
            )
            record.update(
                source_text=columns[-2].strip(),
                target_text=columns[-1].strip(),
                source_language=source_language,
                target_language=target_language,
            )
            if score is not None:
                record["score"] = score
                if score < min_score:
                    record["reader_reject"] = BELOW_MIN_SCORE
            if not record["source_text"] or not record["target_text"]:
                record["reader_reject"] = EMPTY_CAPTION
            yield record
