"""The language of a multilingual annotation file: the source's ``language`` option, or its path.

The IGLUE and CCLM files name their language in a folder (``XVNLI/annotations/ar/test.jsonl``,
``xGQA/annotations/few_shot/de/test.json``) or in the file name (``marvl-zh.json``,
``en.train.json``, ``WikiMatrix.de-en.tsv``); a name that says none, or more than one, needs the option (default ``auto``: from the path).
"""

from __future__ import annotations

import re

from x2vlm_core.errors import DataError
from x2vlm_core.gcs_path import AnyPath

AUTO = "auto"  # the option's default: read the language from the path

# ISO 639-1/-3 codes, optionally with a script or region (zh-CN, pt_BR, sr-Latn).
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(?:[-_](?:[A-Z]{2}|[A-Z][a-z]{3}))?")
# Short words of these file names that look like codes but are not languages.
_NOT_LANGUAGES = frozenset({"val", "dev", "all", "ann", "gmt", "raw", "txt", "tsv", "json", "jsonl", "gz", "img"})


def check_language(code: str, where: str) -> str:
    if not LANGUAGE_CODE.fullmatch(code):
        raise DataError(f"{where}: {code!r} is not a language code; use an ISO 639 code such as 'de' or 'zh-CN'")
    return code


def _candidates(name: str) -> list[str]:
    return [
        part for part in re.split(r"[._\-\s]+", name) if LANGUAGE_CODE.fullmatch(part) and part not in _NOT_LANGUAGES
    ]


def language_of(option: str, path: AnyPath) -> str:
    """``option`` unless ``auto``, else the parent folder's name, else the one code in the file name."""
    if option != AUTO:
        return check_language(option, f"{path}: language")
    folder = path.parent.name
    if LANGUAGE_CODE.fullmatch(folder) and folder not in _NOT_LANGUAGES:
        return folder
    found = _candidates(path.name)
    if len(found) != 1:
        said = f"names {found}" if found else "names no language"
        raise DataError(f"{path}: the path {said}; set 'language' in its source entry")
    return found[0]


def language_pair_of(option: str, path: AnyPath) -> tuple[str, str]:
    """``src-tgt`` from ``option`` unless ``auto``, else from the file name (WikiMatrix: ``WikiMatrix.de-en.tsv.gz``)."""
    where = f"{path}: language_pair"
    if option != AUTO:
        parts = option.split("-")
        if len(parts) != 2:
            raise DataError(f"{where} is {option!r}; write it as source-target, e.g. 'en-de'")
        return check_language(parts[0], where), check_language(parts[1], where)
    pairs = re.findall(r"(?:^|[._])([a-z]{2,3})-([a-z]{2,3})(?=[._]|$)", path.name)
    if len(pairs) != 1:
        raise DataError(f"{path}: the file name names no single source-target pair; set 'language_pair' (e.g. 'en-de')")
    return pairs[0]
