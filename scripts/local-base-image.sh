#!/usr/bin/env bash
# A local base image for `make images-local`: Debian bookworm (Python 3.11, the version of the
# CPU torch wheel and of requirements/constraints.txt) built with debootstrap from Debian's
# packages and imported into the engine, for machines that reach no image registry.
#
#   scripts/local-base-image.sh [IMAGE]      (default x2vlm-local/debian-python:bookworm)
#
# The image holds Debian's python3.11 with pip's CA certificates, nothing else. Debian's /usr is
# externally managed (PEP 668) and has no pip, so a virtual environment of that interpreter at
# /usr/local puts `python` and `pip` where the python:3.11-slim and Beam SDK bases have them.
# It is rebuilt only when missing (remove it to rebuild). ENGINE=podman imports into podman.
set -euo pipefail

image="${1:-x2vlm-local/debian-python:bookworm}"
engine="${ENGINE:-docker}"
suite=bookworm
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if "$engine" image inspect "$image" >/dev/null 2>&1; then
    echo "local base image $image is present"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install -y debootstrap" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "debootstrap needs root" >&2; exit 1; }

rootfs="$(mktemp -d /var/tmp/x2vlm-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap $suite into $rootfs"
# minbase: no init, no docs tools; python3-venv brings ensurepip for the build stage's venv.
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates "$suite" "$rootfs" "$mirror"
chroot "$rootfs" python3 -m venv /usr/local
# Machines whose traffic passes a TLS-inspecting proxy trust its CA through locally added
# certificates; the builds' pip needs them too (and reads the system bundle via PIP_CERT, as
# the pip that ensurepip brings does not use the system store by itself).
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates
fi
# What the image never needs at run time: apt's lists, logs and caches.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
tar -C "$rootfs" -c . | "$engine" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' - "$image"
echo "imported $image"
