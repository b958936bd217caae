#!/usr/bin/env bash
# Files larger than one device call can carry (<= 64 MiB with the tracked files, ~27 MB of them) reach the GPU machine
# as one xz-compressed tar in parts, one part a call, in consecutive calls (the machine and its /tmp stay while warm):
#   here:   bash benchmarks/gpu/bundle.sh pack PATH...   (paths under the repo root, e.g. .whl .carry/eval
#                                                         .carry/gguf .carry/tokens/smollm2 -> .carry/bundle/part_aa...)
#   there:  bash benchmarks/gpu/bundle.sh stash          (carry .carry/bundle/part_aa; then _ab, ...)
#           bash benchmarks/gpu/bundle.sh unpack         (carry the last part: checks the whole and untars it in place)
# PART_SIZE (default 34m, as split -b takes it) sets the part size: 34 MiB + the tracked files fit one call.
# BUNDLE_STASH (default /tmp/bundle) is where the parts wait on the GPU machine.
set -euo pipefail
here=.carry/bundle stash=${BUNDLE_STASH:-/tmp/bundle}
case "${1:-}" in
  pack)
    shift
    [ $# -gt 0 ] || { echo "bundle.sh pack: name the paths to bundle (e.g. .whl .carry/eval)" >&2; exit 2; }
    for p in "$@"; do [ -e "$p" ] || { echo "bundle.sh pack: $p does not exist" >&2; exit 2; }; done
    rm -rf "$here" && mkdir -p "$here"
    tar cf - "$@" | xz -T0 -6 > "$here/bundle.tar.xz"
    (cd "$here" && sha256sum bundle.tar.xz) > "$here/SHA256"
    split -b "${PART_SIZE:-34m}" "$here/bundle.tar.xz" "$here/part_"
    rm "$here/bundle.tar.xz"
    ls "$here"/part_* | wc -l > "$here/PARTS"
    ls -la "$here"; echo "$(cat "$here/PARTS") call(s): carry one part_* each, with $here/SHA256 and $here/PARTS" ;;
  stash|unpack)
    mkdir -p "$stash"
    cp "$here"/part_* "$here"/SHA256 "$here"/PARTS "$stash"/ 2>/dev/null || true  # whatever this call carried
    have=$(ls "$stash"/part_* 2>/dev/null | wc -l || true)
    echo "bundle: $have of $(cat "$stash/PARTS" 2>/dev/null || echo '?') part(s) stashed"
    if [ "$1" = unpack ]; then
      [ "$have" = "$(cat "$stash/PARTS")" ] || { echo "bundle.sh unpack: parts missing (stash them first)" >&2; exit 1; }
      cat "$stash"/part_* > "$stash/bundle.tar.xz"
      (cd "$stash" && sha256sum -c --quiet SHA256) || { echo "bundle.sh unpack: the parts do not add up to the packed bundle (checksum differs): pack and carry them again" >&2; exit 1; }
      xz -dc "$stash/bundle.tar.xz" | tar xf - && rm "$stash/bundle.tar.xz"
      echo "bundle unpacked into $PWD"
    fi ;;
  *) echo "usage: bundle.sh pack PATH... | stash | unpack" >&2; exit 2 ;;
esac
