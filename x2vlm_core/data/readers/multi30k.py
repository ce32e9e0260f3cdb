"""Multi30K task 1 (github.com/multi30k/dataset ``data/task1``): Flickr30K captions and their translations.

``texts`` holds one file per split and language, ``{split}.{language}`` (gzipped or not: ``train.de.gz``,
``test_2016_flickr.fr``), one sentence per line; ``image_splits/{split}.txt`` lists the Flickr30K
image of each line, in the same order. The source's ``split`` names the files. One ``image_text``
record per image: ``image_id`` (the file name's stem), one caption per language, ``caption_languages``.
``languages`` picks the languages (default: every one that split has).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from x2vlm_core.data.readers.common import base_record, open_text, record_key
from x2vlm_core.data.readers.languages import LANGUAGE_CODE, check_language
from x2vlm_core.data.sources import Source, SourceFormat
from x2vlm_core.errors import DataError
from x2vlm_core.gcs_path import AnyPath

KIND = "image_text"
FORMAT = SourceFormat((), ("texts", "image_splits", "images"), default_split="train", options={"languages": []})


def _read_lines(path: AnyPath) -> list[str]:
    try:
        with open_text(path) as handle:
            return [line.rstrip("\r\n") for line in handle]
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; re-download the Multi30K files") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot be read ({exc}); re-download the Multi30K files") from None


def text_files(texts: AnyPath, split: str, languages: list[str]) -> dict[str, AnyPath]:
    """``{language: file}`` of one split; every language asked for must have its file."""
    found = {}
    children: list[AnyPath] = [*texts.iterdir()]
    for path in sorted(children, key=str):
        name = path.name.removesuffix(".gz")
        prefix, _, language = name.rpartition(".")
        if prefix == split and LANGUAGE_CODE.fullmatch(language):
            found[language] = path
    wanted = languages or sorted(found)
    missing = [language for language in wanted if language not in found]
    if missing or not wanted:
        raise DataError(
            f"{texts}: no {split}.<language> file for {missing or 'any language'} "
            f"(found {sorted(found) or 'none'}); check the folder and the source's split"
        )
    return {language: found[language] for language in wanted}


def read(source: Source) -> Iterator[dict]:
    split = source.given_split
    languages = [check_language(str(code), "multi30k languages") for code in source.options["languages"]]
    split_file = source.path("image_splits") / f"{split}.txt"
    if not split_file.is_file():
        raise DataError(f"{split_file} does not exist; Multi30K's image_splits folder names each split's images")
    images = [line.strip() for line in _read_lines(split_file)]
    files = text_files(source.path("texts"), split, languages)
    texts = {language: _read_lines(path) for language, path in files.items()}
    for language, lines in texts.items():
        if len(lines) != len(images):
            raise DataError(
                f"{files[language]} has {len(lines)} lines, {split_file} {len(images)} images; "
                "each line must caption the image on the same line"
            )
    for index, image in enumerate(images):
        if not image:
            raise DataError(f"{split_file}: line {index + 1} is empty; expected an image file name")
        record = base_record(
            source,
            record_key(f"multi30k-{split}", f"{index:06d}", split_file),
            KIND,
            split,
            [source.path("images") / image],
        )
        record.update(
            image_id=Path(image).stem,
            captions=[texts[language][index].strip() for language in texts],
            caption_languages=list(texts),
        )
        yield record
