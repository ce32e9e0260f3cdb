#!/bin/sh
# The install step every image shares: the packages of one hash-pinned lock, then x2vlm-platform
# itself from the source tree in the current folder.
#
#   sh images/install-x2vlm.sh LOCK [WHEELS]
#
# LOCK    requirements/<name>.lock (`make locks` writes them): every package the image gets, each
#         with the hashes of its files. pip installs exactly those (--require-hashes --no-deps):
#         a file whose hash is not in the lock fails the build.
# WHEELS  where the packages that PyPI lacks (the CPU torch wheel) are: the URL of a package index
#         (the PyTorch wheel index), or a folder in the build context (images/wheels/, `make
#         images-local`). Their hashes are in the lock like any other's.
#
# pip's hash-checking mode does not check what an isolated build fetches, so nothing builds in
# isolation: the lock's build tools go in first, and deepspeed, whose build imports torch, last.
set -eu

lock="$1"
wheels="${2:-}"
build_tools="setuptools wheel"
builds_on_torch="deepspeed"

[ -f "$lock" ] || { echo "install-x2vlm.sh: no lock $lock (make locks writes requirements/*.lock)" >&2; exit 2; }
case "$wheels" in
    "") source="" ;;
    http://* | https://*) source="--extra-index-url $wheels" ;;
    *) source="--find-links $wheels" ;;
esac

# part only|except NAME...: the entries of the lock (a pinned line and its hash lines) named, or not.
part() {
    select="$1"
    shift
    awk -v select="$select" -v names=" $* " '
        /^[A-Za-z0-9]/ { name = tolower($1); sub(/[=\[].*/, "", name); named = index(names, " " name " ") > 0 }
        /^[A-Za-z0-9]/ || /^[ \t]+--hash/ { if (named == (select == "only")) print }
    ' "$lock"
}

# install_part only|except NAME...: install those entries, hash-checked, without dependencies.
install_part() {
    part "$@" >/tmp/x2vlm-part.txt
    if grep -q . /tmp/x2vlm-part.txt; then
        # $source is empty or an option and its value: split on purpose.
        # shellcheck disable=SC2086
        python -m pip install --no-cache-dir --disable-pip-version-check --no-deps --require-hashes \
            --no-build-isolation $source --requirement /tmp/x2vlm-part.txt
    fi
    rm /tmp/x2vlm-part.txt
}

install_part only $build_tools
install_part except $build_tools $builds_on_torch
install_part only $builds_on_torch
# Our package: local source, so no hash; its dependencies are all in the lock, so none from an index.
python -m pip install --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation --no-index .
