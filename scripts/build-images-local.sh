#!/usr/bin/env bash
# `make images-local`: the train, beam and publish images, built on a local Debian base with
# Debian's Python 3.11 and the CPU torch wheel, for machines that reach PyPI and Debian's
# packages but no image registry. The images get the tagged names of components/images.py, so
# the compiled pipeline's steps find them in the local engine (with X2VLM_IMAGE_DIGESTS= set
# empty where images/digests.json records pushed digests: local images carry none).
#
#   scripts/build-images-local.sh [IMAGE...]      (default: train beam publish)
#
# The train image installs requirements/train-cpu.lock, the publish image requirements/publish.lock,
# both with the CPU torch wheel (torch==X+cpu) that this script puts into images/wheels/; the lock's
# hash checks it. ENGINE=podman builds with podman; TORCH_WHEEL=FILE uses that wheel instead of the
# one pip finds for the lock's pin. Build times go to build/images-local.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."

engine="${ENGINE:-docker}"
base="${LOCAL_BASE:-x2vlm-local/debian-python:bookworm}"
python="${PYTHON:-python3}"
images=("$@")
[ ${#images[@]} -gt 0 ] || images=(train beam publish)

command -v "$engine" >/dev/null || { echo "$engine is missing; see scripts/container-engine.sh" >&2; exit 1; }
"$engine" info >/dev/null 2>&1 || { echo "$engine does not answer: scripts/container-engine.sh start" >&2; exit 1; }
ENGINE="$engine" scripts/local-base-image.sh "$base"
mkdir -p build

# The wheel goes into the build context (images/wheels/ is ignored by git, not by the build);
# the beam image installs no torch.
if [[ " ${images[*]} " =~ \ (train|publish)\  ]]; then
    rm -f images/wheels/torch-*.whl
    if [ -n "${TORCH_WHEEL:-}" ]; then
        cp "$TORCH_WHEEL" images/wheels/
    else
        # The lock's torch entry, with its hash: pip fetches that file (from a folder or index its
        # configuration names) or none. The image's interpreter (CPython 3.11, manylinux x86_64)
        # decides the wheel, not this one's.
        sed -n '/^torch==/,/^ *#/p' requirements/train-cpu.lock | grep -v '^ *#' >build/torch.lock
        "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
            --platform manylinux_2_28_x86_64 --require-hashes --dest images/wheels --requirement build/torch.lock
    fi
    echo "torch wheel: $(ls images/wheels/torch-*.whl)"
fi

commit="$(git rev-parse HEAD)"
times=build/images-local.tsv
for image in "${images[@]}"; do
    ref="$("$python" -m components.images tagged "$image")"
    args=(--build-arg "BASE_IMAGE=$base" --build-arg "GIT_COMMIT=$commit" --build-arg "VERSION=${ref##*:}")
    case "$image" in
        # python3.11 is both the Debian package the train Dockerfile installs and its interpreter.
        # DeepSpeed's CPU op compiled at build time: at run time the root filesystem is read-only.
        train) args+=(--build-arg PYTHON=python3.11 --build-arg LOCK=requirements/train-cpu.lock
                      --build-arg WHEELS=images/wheels --build-arg DS_BUILD_SHM_COMM=1
                      --build-arg "BUILD_PACKAGES=g++ python3.11-dev" --build-arg RUNTIME_PACKAGES=libgomp1) ;;
        publish) args+=(--build-arg WHEELS=images/wheels) ;;
    esac
    echo "building $ref"
    started="$(date +%s)"
    # DOCKER_BUILDKIT=0: BuildKit would fetch the `# syntax=` frontend image from a registry.
    DOCKER_BUILDKIT=0 "$engine" build -f "images/$image/Dockerfile" "${args[@]}" -t "$ref" .
    seconds=$(( $(date +%s) - started ))
    printf '%s\t%s\t%s\t%s\n' "$image" "$ref" "$seconds" "$(date -u +%FT%TZ)" >>"$times"
    echo "built $ref in ${seconds}s"
done
