"""Official checkpoints → our model folder (``x2vlm import-official``).

    import_official("x2vlm_base_4m.th", "models/x2vlm-base-384", image_res=384)

The file is read with ``torch.load(weights_only=True)``. Its own saved config (X²-VLM:
``'config'``; Lightning, as VLMo saves: ``hyper_parameters['config']``), or the official YAML
given instead, is claimed by the one family whose ``official`` format recognises it, and mapped
onto that family's config, each setting reported as ``official key = value -> our field = value``.
The model is built at ``image_res`` (default: the checkpoint's), the weights are fitted by the
family's checkpoint adapter (position tables resized as the official loader resizes them) and
loaded strictly: a weight missing from either side refuses the file, except the heads the
official config did not build. The result is our model folder (safetensors, config.yaml,
tokenizer), which ``finetune --pretrained`` and ``pretrain --init`` take as it is.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from torch import nn

from x2vlm_core.config_io import load_yaml
from x2vlm_core.errors import CheckpointError, ConfigError
from x2vlm_core.families import all_families, create_model
from x2vlm_core.families.spec import ModelFamily, OfficialFormat, OfficialMapping, StateDict, VisionLanguageModel
from x2vlm_core.release.model_folder import read_torch_file, save_model_dir, state_dict_of, tied_aliases
from x2vlm_core.release.official_files import OfficialFiles

PROVENANCE = "official_import.json"


@dataclass
class ImportedCheckpoint:
    model: nn.Module
    family: ModelFamily
    mapping: OfficialMapping
    config_source: str
    left_at_init: list[str]


def saved_config(contents: Any) -> dict[str, Any] | None:
    """The config an official training run saved beside the weights, if any."""
    if not isinstance(contents, dict):
        return None
    if isinstance(contents.get("config"), dict):
        return contents["config"]
    hyper = contents.get("hyper_parameters")
    if isinstance(hyper, dict):
        return hyper["config"] if isinstance(hyper.get("config"), dict) else hyper
    return None


def family_for(official: dict[str, Any], where: str) -> ModelFamily:
    claims = [
        family
        for family in all_families().values()
        if family.official is not None and family.official.recognises(official)
    ]
    if len(claims) != 1:
        known = ", ".join(family.title for family in all_families().values() if family.official is not None)
        found = "several families" if claims else "no family"
        raise ConfigError(
            f"the config of {where} is recognised by {found} with an official import ({known}); "
            f"its keys start {sorted(official)[:6]}"
        )
    return claims[0]


def imported_format(family: ModelFamily) -> OfficialFormat:
    """The official format of a family an official checkpoint was imported into (it always has one)."""
    if family.official is None:
        raise ConfigError(f"the {family.title} family has no official checkpoint format")
    return family.official


def import_checkpoint(
    checkpoint: str | Path,
    image_res: int | None = None,
    official_yaml: str | Path | None = None,
    supplied: dict[str, str | Path] | None = None,
) -> ImportedCheckpoint:
    """The official checkpoint as our model, in memory (``supplied``: official key -> file, see ``official_files``)."""
    checkpoint = Path(checkpoint)
    contents = read_torch_file(checkpoint)
    state = state_dict_of(contents, checkpoint)
    official: dict[str, Any] | None
    if official_yaml is not None:
        official, source = load_yaml(official_yaml), f"--config {official_yaml}"
    else:
        official, source = saved_config(contents), f"{checkpoint} (saved config)"
    if not official:
        raise ConfigError(
            f"{checkpoint} holds no saved config; pass the official YAML it was trained with as --config OFFICIAL_YAML"
        )
    search = tuple(dict.fromkeys(p.parent for p in (checkpoint, Path(official_yaml or checkpoint))))
    files = OfficialFiles(search, {key: Path(path) for key, path in (supplied or {}).items()})
    family = family_for(official, str(checkpoint))
    mapping = imported_format(family).to_config(official, state, files)
    mapping.config.setdefault("name", checkpoint.stem)
    if image_res is not None and image_res != mapping.config.get("image_res"):
        mapping.map("--image-res", image_res, "image_res", image_res)
    model = create_model(family.build_config(mapping.config, f"the config mapped from {source}"))
    left = load_strictly(model, family, state, mapping.absent_prefixes, str(checkpoint))
    return ImportedCheckpoint(model.eval(), family, mapping, source, left)


def load_strictly(
    model: nn.Module, family: ModelFamily, state: StateDict, absent_prefixes: tuple[str, ...], source: str
) -> list[str]:
    """Load every weight, refusing any the model lacks or the file lacks; returns the heads left at init."""
    state = family.adapt_checkpoint(model, state)
    ours = model.state_dict()
    expected = set(ours) - tied_aliases(model)
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - set(ours))
    not_built = [key for key in missing if key.startswith(absent_prefixes)] if absent_prefixes else []
    missing = [key for key in missing if key not in not_built]
    if missing or unexpected:
        raise CheckpointError(
            f"{source} is in no known {family.title} layout: {len(missing)} weights missing"
            + (f" (first: {missing[0]})" if missing else "")
            + f", {len(unexpected)} unexpected"
            + (f" (first: {unexpected[0]})" if unexpected else "")
        )
    wrong = [
        f"{key}: file {tuple(value.shape)} vs model {tuple(ours[key].shape)}"
        for key, value in state.items()
        if ours[key].shape != value.shape
    ]
    if wrong:
        raise CheckpointError(
            f"{source} does not fit the model its config describes ({len(wrong)} shape mismatches, first: {wrong[0]})"
        )
    model.load_state_dict(state, strict=False)  # checked above, heads not built aside
    return not_built


def import_official(
    checkpoint: str | Path,
    output: str | Path,
    image_res: int | None = None,
    official_yaml: str | Path | None = None,
    supplied: dict[str, str | Path] | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Import ``checkpoint`` and write it as the model folder ``output`` (new or empty)."""
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ConfigError(f"output {output} already exists and is not an empty folder; pick a new folder")
    imported = import_checkpoint(checkpoint, image_res, official_yaml, supplied)
    echo(f"{imported.family.title} checkpoint {checkpoint}; config from {imported.config_source}:")
    for line in imported.mapping.lines:
        echo(f"  {line}")
    partial = output.with_name(output.name + ".partial")  # renamed when complete: never a half-written folder
    shutil.rmtree(partial, ignore_errors=True)
    save_model_dir(imported.model, partial)
    provenance = {
        "checkpoint": str(checkpoint),
        "sha256": _sha256(Path(checkpoint)),
        "family": imported.family.name,
        "config_source": imported.config_source,
        "mapping": imported.mapping.lines,
        "left_at_init": imported.left_at_init,
    }
    (partial / PROVENANCE).write_text(json.dumps(provenance, indent=2))
    if output.exists():
        output.rmdir()
    partial.rename(output)
    return {
        "output": str(output),
        "family": imported.family.name,
        "image_res": cast(VisionLanguageModel, imported.model).config.image_res,
        "parameters": sum(p.numel() for p in imported.model.parameters()),
        "mapped_settings": len(imported.mapping.lines),
        "left_at_init": len(imported.left_at_init),
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
