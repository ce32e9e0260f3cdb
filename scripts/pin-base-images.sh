#!/usr/bin/env bash
# Pin each Dockerfile's base images to the digests their tags name now, in place:
#   ARG BASE_IMAGE=repo:tag             → ARG BASE_IMAGE=repo:tag@sha256:<digest read from the registry>
#   ARG BASE_IMAGE=repo:tag@sha256:old  → the same, with the tag's current digest (moving a base)
# and the same for a FROM line that names an image itself.
#
#   scripts/pin-base-images.sh [--check] [DOCKERFILE...]     (default: images/*/Dockerfile)
#
# --check changes nothing: it lists the bases pinned by tag alone, and fails when there is one.
# The digest is that of the tag's top-level manifest (the multi-platform index where there is one),
# read with `docker buildx imagetools inspect`, else `skopeo inspect --raw`, else `crane digest`;
# each needs access to the registry. RESOLVE=COMMAND runs `COMMAND REF` instead, which must print
# the digest. Nothing is written for a base whose digest could not be read.
set -euo pipefail
cd "$(dirname "$0")/.."

check=0
if [ "${1:-}" = "--check" ]; then
    check=1
    shift
fi
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(images/*/Dockerfile)

digest_of() {  # digest_of REF: print the sha256 digest REF's tag names in its registry
    local ref="$1"
    if [ -n "${RESOLVE:-}" ]; then
        $RESOLVE "$ref"
    elif docker buildx version >/dev/null 2>&1; then
        docker buildx imagetools inspect "$ref" --format '{{json .Manifest}}' |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["digest"])'
    elif command -v skopeo >/dev/null; then
        echo "sha256:$(skopeo inspect --raw "docker://$ref" | sha256sum | cut -d' ' -f1)"
    elif command -v crane >/dev/null; then
        crane digest "$ref"
    else
        echo "pin-base-images: no docker buildx, skopeo or crane to read digests with" >&2
        return 1
    fi
}

# The references a Dockerfile names as bases: ARG BASE_IMAGE defaults and FROM lines naming an
# image (not ${...}, not an earlier stage).
bases() {
    awk '
        toupper($1) == "ARG" && $2 ~ /^BASE_IMAGE=./ { sub(/^BASE_IMAGE=/, "", $2); print $2 }
        toupper($1) == "FROM" {
            ref = ($2 ~ /^--platform/) ? $3 : $2
            if (ref !~ /\$/ && !(ref in stage) && ref != "scratch") print ref
            for (i = 1; i <= NF; i++) if (toupper($i) == "AS") stage[$(i + 1)] = 1
        }
    ' "$1"
}

status=0
for file in "${files[@]}"; do
    for ref in $(bases "$file"); do
        tagged="${ref%@*}"
        if [ "$check" = 1 ]; then
            if [ "$tagged" = "$ref" ]; then
                echo "$file: $ref is pinned by tag only"
                status=1
            fi
            continue
        fi
        if ! digest="$(digest_of "$tagged")" || ! [[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]]; then
            echo "$file: could not read the digest of $tagged (${digest:-no output}); left as it is" >&2
            status=1
            continue
        fi
        pinned="$tagged@$digest"
        if [ "$pinned" = "$ref" ]; then
            echo "$file: $ref is current"
            continue
        fi
        # Only whole references, on ARG BASE_IMAGE= and FROM lines.
        python3 - "$file" "$ref" "$pinned" <<'PY'
import re
import sys

path, old, new = sys.argv[1:]
text = open(path).read()
pattern = re.compile(r"(?im)^((?:ARG\s+BASE_IMAGE=)|(?:FROM\s+(?:--platform=\S+\s+)?))" + re.escape(old) + r"(?=\s|$)")
updated, count = pattern.subn(lambda m: m[1] + new, text)
assert count, f"{old} not found in {path}"
open(path, "w").write(updated)
PY
        echo "$file: $ref -> $pinned"
    done
done
exit $status
