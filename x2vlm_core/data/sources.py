"""The prepare-data source list: which raw dataset files to read, in which format, into which dataset.

A sources file is YAML::

    sources:
      - format: coco_captions          # one of SOURCE_FORMATS
        dataset: coco_captions         # output dataset name (a folder in the shard tree)
        split: train                   # only for formats whose files carry no split
        annotations: coco/annotations/captions_train2014.json
        images: coco/train2014

Each format names its path fields, its optional settings (with defaults, e.g. ``caption_key``
for ``x2vlm_image_text``) and whether ``split`` may be given (formats whose files carry their
splits take none). Relative paths are resolved against the YAML file's folder (or the working directory for a
list of dicts), so a sources file can travel with its data. The file and every path in it may be
``gs://``: a ``gs://`` file's relative paths resolve inside its bucket, and the readers read the
objects where they are (``x2vlm_core.gcs_path``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from x2vlm_core import storage
from x2vlm_core.errors import ConfigError, DataError
from x2vlm_core.gcs_path import AnyPath, GcsPath, as_path, relative_to

SAFE_NAME = re.compile(r"[A-Za-z0-9_-]+")
# Settings every format takes. Annotations are not trusted: an image path they name ("../../x.jpg",
# "/etc/...") must stay inside the source's own folders unless the source list says otherwise.
COMMON_OPTIONS: Mapping[str, Any] = {"allow_images_outside": False}


@dataclass(frozen=True)
class SourceFormat:
    files: tuple[str, ...]  # fields naming files that must exist
    folders: tuple[str, ...]  # fields naming folders that must exist
    default_split: str | None  # None: the split comes from the annotation files themselves
    files_or_folders: tuple[str, ...] = ()  # fields naming one file, or a folder whose files are all read
    options: Mapping[str, Any] = field(default_factory=dict)  # optional settings and their defaults
    optional: tuple[str, ...] = ()  # path fields that may be left out (VQA test-dev: questions without annotations)
    # Path fields that need not exist yet: a partial download is normal, each missing input a missing_file reject.
    may_be_missing: tuple[str, ...] = ()


# Every supported format, by name. Each reader module declares its own as ``FORMAT``;
# x2vlm_core.data.readers registers them all here (see the import at the end of this file).
SOURCE_FORMATS: dict[str, SourceFormat] = {}


@dataclass(frozen=True)
class Source:
    """One validated entry of the source list; paths are absolute (local or gs://) and exist."""

    format: str
    dataset: str
    split: str | None  # set exactly when the format takes its split from the source list
    paths: Mapping[str, str]
    options: Mapping[str, Any] = field(default_factory=dict)  # every option of the format, defaults filled in

    def path(self, field: str) -> AnyPath:
        return as_path(self.paths[field])

    @property
    def given_split(self) -> str:
        """``split``, for the readers of a format that takes it from the source list."""
        if self.split is None:
            raise ConfigError(
                f"the {self.format} source of dataset {self.dataset!r} has no split; "
                "this format's files carry their own splits"
            )
        return self.split

    def files(self, field: str) -> list[AnyPath]:
        """The file a files-or-folders field names, or every file in its folder (sorted, hidden files skipped)."""
        path = self.path(field)
        if path.is_file():
            return [path]
        return sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in relative_to(p, path).parts)
        )


def load_sources(spec: str | Path | Sequence[Mapping[str, Any] | Source]) -> list[Source]:
    """Parse and validate a sources YAML file, or a list of entries (dicts or ready ``Source``)."""
    base_dir: AnyPath
    if isinstance(spec, (str, Path)):
        path = as_path(spec)
        entries = _read_yaml_list(path)
        base_dir, where = (path.parent if isinstance(path, GcsPath) else path.resolve().parent), str(path)
    else:
        entries, base_dir, where = list(spec), Path.cwd(), "sources"
    if not entries:
        raise ConfigError(f"{where}: the source list is empty; add at least one entry under 'sources:'")
    return [
        entry if isinstance(entry, Source) else parse_source(entry, f"{where}: sources[{index}]", base_dir)
        for index, entry in enumerate(entries)
    ]


def _read_yaml_list(path: AnyPath) -> list[Any]:
    try:
        text = storage.read_bytes(str(path)).decode("utf-8")
    except storage.NotFound:
        raise DataError(
            f"sources file {path} does not exist; pass the path or gs:// URI of a YAML file with a 'sources:' list"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the sources file as UTF-8") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]}); fix the syntax") from None
    if not isinstance(document, dict) or set(document) != {"sources"} or not isinstance(document["sources"], list):
        raise ConfigError(f"{path}: expected a mapping with exactly one key 'sources' holding a list of entries")
    return document["sources"]


def parse_source(entry: Mapping[str, Any], where: str, base_dir: AnyPath) -> Source:
    """Validate one entry; ``where`` names it in error messages (e.g. 'sources.yaml: sources[2]')."""
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a mapping with 'format', 'dataset' and paths, got {type(entry).__name__}")
    format_name = entry.get("format")
    if format_name not in SOURCE_FORMATS:
        raise ConfigError(f"{where}: format {format_name!r} is not supported; use one of {sorted(SOURCE_FORMATS)}")
    spec = SOURCE_FORMATS[format_name]
    path_fields = spec.files + spec.folders + spec.files_or_folders
    allowed = {"format", "dataset", *path_fields, *spec.options, *COMMON_OPTIONS} | (
        {"split"} if spec.default_split else set()
    )
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown} for format {format_name!r}; valid keys are {sorted(allowed)}"
        )
    missing = sorted(({"dataset", *path_fields}) - set(spec.optional) - set(entry))
    if missing:
        raise ConfigError(
            f"{where}: missing key(s) {missing} for format {format_name!r}; valid keys are {sorted(allowed)}"
        )

    dataset = _safe_name(entry["dataset"], f"{where}.dataset")
    split = _safe_name(entry.get("split", spec.default_split), f"{where}.split") if spec.default_split else None
    options = {}
    for name, default in {**COMMON_OPTIONS, **spec.options}.items():
        value = entry.get(name, default)
        if type(value) is not type(default) or (isinstance(value, str) and not value):
            raise ConfigError(
                f"{where}.{name}: expected a {'non-empty ' if isinstance(default, str) else ''}{type(default).__name__}, got {value!r}"
            )
        options[name] = value
    paths = {}
    for field_name in (name for name in path_fields if name in entry):
        value = entry[field_name]
        if not isinstance(value, (str, Path)) or not str(value):
            raise ConfigError(f"{where}.{field_name}: expected a path string, got {value!r}")
        path = _resolve(str(value), base_dir, f"{where}.{field_name}")
        if field_name in spec.files_or_folders:
            exists, kind = path.exists(), "file or folder"
        elif field_name in spec.folders:
            exists, kind = path.is_dir(), "folder"
        else:
            exists, kind = path.is_file(), "file"
        if not exists and field_name not in spec.may_be_missing:
            raise DataError(
                f"{where}.{field_name}: {kind} {path} does not exist; fix the path or download the {format_name} data"
            )
        paths[field_name] = str(path)
    return Source(format=format_name, dataset=dataset, split=split, paths=paths, options=options)


def _resolve(value: str, base_dir: AnyPath, where: str) -> AnyPath:
    """A path of the sources file: a gs:// URI as it is, else relative to the file's folder (local or gs://)."""
    if storage.is_gcs(value):
        return GcsPath(value)
    if "://" in value:
        raise ConfigError(
            f"{where}: {value} is not supported as a source; use a local path, a mounted folder or a gs:// URI"
        )
    if isinstance(base_dir, GcsPath):
        # An absolute path in a gs:// sources file is a folder mounted where the job runs.
        local = Path(value).expanduser()
        return local.resolve() if local.is_absolute() else base_dir / value
    return (base_dir / Path(value).expanduser()).resolve()


def _safe_name(value: Any, where: str) -> str:
    # Dataset and split names become folder and file names in the shard tree.
    if not isinstance(value, str) or not SAFE_NAME.fullmatch(value):
        raise ConfigError(f"{where}: {value!r} is not a valid name; use only letters, digits, '_' and '-'")
    return value


# The readers declare the formats beside their code (``FORMAT``); importing the readers
# registers them in SOURCE_FORMATS, whichever of the two modules is imported first.
import x2vlm_core.data.readers  # noqa: E402,F401
