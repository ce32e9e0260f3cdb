"""Bad input gives one line: a pickle posing as safetensors, bad YAML on the command line, values
that would print as gigabytes, and annotations that name images outside their dataset."""

import json
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import yaml
from PIL import Image
from test_publish import save_tiny_model

from pipelines.submit import parse_params
from x2vlm_core.cli import main
from x2vlm_core.config_io import apply_overrides
from x2vlm_core.data.readers import read_source
from x2vlm_core.data.readers.common import OUTSIDE_SOURCE
from x2vlm_core.data.sources import load_sources
from x2vlm_core.errors import CheckpointError, ConfigError
from x2vlm_core.release.fetch import sha256_file
from x2vlm_core.release.model_folder import init_from, load_model_dir
from x2vlm_core.release.publish import publish_release

# Nine levels of nine: parsed, a few objects sharing references; printed, about 3 GB.
BILLION_LAUGHS = (
    "["
    + ", ".join([f"&a0 [{', '.join(['lol'] * 9)}]"] + [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)])
    + "]"
)


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_a_pickle_named_model_safetensors_is_one_line_and_never_unpickled(tmp_path, capsys):
    folder = tmp_path / "model"
    save_tiny_model(folder)
    release = publish_release(folder, str(tmp_path / "rel"), "m", version="v1")
    weights = os.path.join(release, "model.safetensors")
    with open(weights, "wb") as f:
        pickle.dump({"model": Payload(tmp_path / "pwned")}, f)
    # A consistent release: the manifest lists the pickle's own size and hash.
    manifest = json.loads(open(os.path.join(release, "manifest.json")).read())
    entry = next(e for e in manifest["files"] if e["path"] == "model.safetensors")
    entry.update(size=os.path.getsize(weights), sha256=sha256_file(weights))
    open(os.path.join(release, "manifest.json"), "w").write(json.dumps(manifest))

    with pytest.raises(CheckpointError, match="model.safetensors is not a readable safetensors file"):
        load_model_dir(release)
    with pytest.raises(CheckpointError, match="is not a readable safetensors file"):
        init_from(load_model_dir(folder), weights)
    assert main(["fetch-release", str(release), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a readable safetensors file" in err
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("value", ["[1,", "{a: 1", "a: b: c", "'unclosed"])
def test_invalid_yaml_on_the_command_line_is_one_line(value, tmp_path, capsys):
    with pytest.raises(yaml.YAMLError):  # what --set, --param and --params-file handed on before
        yaml.safe_load(value)
    with pytest.raises(ConfigError, match="is not valid YAML"):
        apply_overrides({}, [f"train.steps={value}"])
    code = main(
        [
            "pretrain",
            "--shards",
            str(tmp_path),
            "--output",
            str(tmp_path / "o"),
            "--model",
            "x2vlm_tiny",
            "--set",
            f"train.steps={value}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--set train.steps" in err

    package = tmp_path / "p.yaml"
    package.write_text(yaml.safe_dump({"root": {"inputDefinitions": {"parameters": {"steps": {}}}}}))
    with pytest.raises(ConfigError, match="--param 'steps'.* is not valid YAML"):
        parse_params([f"steps={value}"], None, str(package))
    (tmp_path / "params.yaml").write_text(f"steps: {value}\n")
    with pytest.raises(ConfigError, match="is not valid YAML") as err:
        parse_params([], str(tmp_path / "params.yaml"), str(package))
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="not found"):
        parse_params([], str(tmp_path / "missing.yaml"), str(package))


def test_a_billion_laughs_value_gives_a_short_message_in_bounded_memory(tmp_path):
    """In a process allowed 1 GiB more than it holds after the imports: a full repr would need ~3 GB."""
    script = textwrap.dedent(f"""
        import resource
        from x2vlm_core.errors import X2VLMError
        from x2vlm_core.run_config import load_run_config
        held = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (held + (1 << 30), resource.RLIM_INFINITY))
        try:
            load_run_config(None, "x2vlm_tiny", ["train.steps=" + {BILLION_LAUGHS!r}])
        except X2VLMError as error:
            print(error)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (line,) = done.stdout.splitlines()
    assert line.startswith("train.steps must be int, got [['lol'") and len(line) < 300


def _coco(root, file_names, **options):
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (16, 16)).save(root / "images" / "a.jpg")
    Image.new("RGB", (16, 16)).save(root / "elsewhere.jpg")
    images = [{"id": i, "file_name": name} for i, name in enumerate(file_names)]
    annotations = [{"id": i, "image_id": i, "caption": "a black square"} for i in range(len(file_names))]
    (root / "captions.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    (source,) = load_sources(
        [
            {
                "format": "coco_captions",
                "dataset": "d",
                "annotations": str(root / "captions.json"),
                "images": str(root / "images"),
                **options,
            }
        ]
    )
    return list(read_source(source))


def test_annotation_image_paths_outside_the_images_folder_are_rejects(tmp_path):
    names = ["a.jpg", "../elsewhere.jpg", str(tmp_path / "elsewhere.jpg"), "sub/../../elsewhere.jpg"]
    records = _coco(tmp_path / "plain", names)
    outside = (tmp_path / "plain" / "images" / "../elsewhere.jpg").resolve()
    assert outside.is_file()  # the attack: the path leads to a readable image that is not the dataset's
    assert [r.get("reader_reject") for r in records] == [None, OUTSIDE_SOURCE, OUTSIDE_SOURCE, OUTSIDE_SOURCE]

    allowed = _coco(tmp_path / "allowed", names, allow_images_outside=True)  # explicitly
    assert [r.get("reader_reject") for r in allowed] == [None] * 4
