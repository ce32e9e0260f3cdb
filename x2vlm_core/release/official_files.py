"""Finding the files an official config names: a tokenizer folder, an encoder's config.

Official configs name them by paths inside the official repository (``data/bert-base-uncased``,
``configs/config_beit2_base.json``) or beside the checkpoint. A path given with the matching
``import-official`` flag wins; otherwise the name is tried as written, then in each search folder
(the checkpoint's, the ``--config`` YAML's). A family's mapping decides what a name it cannot find
means (a well-known name has built-in values) and otherwise refuses it with ``missing``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from x2vlm_core.errors import ConfigError

# The official config keys that name files, and the import-official flag that supplies each.
FLAGS = {
    "text_encoder": "--text-encoder",
    "vision_config": "--vision-config",
    "text_config": "--text-config",
    "cross_encoder": "--cross-encoder",
    "tokenizer": "--tokenizer",
}


@dataclass(frozen=True)
class OfficialFiles:
    search_dirs: tuple[Path, ...] = ()
    supplied: dict[str, Path] = field(default_factory=dict)  # official key -> path given by its flag

    def find(self, key: str, name: str) -> Path | None:
        """The file or folder that ``key: name`` stands for, or None when it is not here."""
        if key in self.supplied:
            path = self.supplied[key]
            if not path.exists():
                raise ConfigError(f"{FLAGS[key]} {path} does not exist")
            return path
        written = Path(name)
        candidates = (
            [written] if written.is_absolute() else [written, *(folder / written for folder in self.search_dirs)]
        )
        return next((path for path in candidates if path.exists()), None)

    def folder(self, key: str, name: str, needs: tuple[str, ...], what: str) -> Path | None:
        """Like ``find``, for a folder that must hold the files ``needs`` (``what`` says what it is)."""
        found = self.find(key, name)
        if found is not None and not all((found / file).is_file() for file in needs):
            raise ConfigError(f"{key} folder {found} lacks {' or '.join(needs)}; pass {what} with {FLAGS[key]} PATH")
        return found

    def config_json(
        self, key: str, name: str, published: dict[str, dict[str, Any]], what: str, needs: tuple[str, ...] = ()
    ) -> tuple[dict[str, Any], str]:
        """The JSON config ``key: name`` names, read here or, when absent, known by its file name from the
        ``published`` ones; with the source to cite in the mapping. A file here must be a JSON object
        with the fields ``needs``."""
        found = self.find(key, name)
        if found is not None:
            try:
                config = json.loads(found.read_text())
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ConfigError(f"{key} {found} is not JSON ({exc}); pass {what} with {FLAGS[key]} PATH") from None
            lacking = [field for field in needs if not isinstance(config, dict) or field not in config]
            if lacking:
                raise ConfigError(
                    f"{key} {found} lacks {', '.join(lacking)}: not {what}; pass the right file with {FLAGS[key]} PATH"
                )
            return config, name
        if Path(name).name in published:
            return published[Path(name).name], f"{name} (published)"
        raise self.missing(key, name, what)

    def missing(self, key: str, name: str, what: str) -> ConfigError:
        """The one-line refusal for a named file that is not here."""
        return ConfigError(
            f"the official config names {key} {name!r} ({what}), which is not here; pass it with {FLAGS[key]} PATH"
        )
