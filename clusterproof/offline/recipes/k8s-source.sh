#!/usr/bin/env bash
# Debian bookworm's kubernetes source package (1.20.2 with vendor/), downloaded once.
. "$(dirname "$0")/lib.sh"
: "${OUT:?}"; out="$OUT/src"
mkdir -p "$out"
if ! ls "$out"/kubernetes_*.orig.tar.gz >/dev/null 2>&1; then
  apt_private_update
  (cd "$out" && apt_private source --download-only -qq kubernetes) \
    || die "could not download the kubernetes source package from $DEBIAN_MIRROR"
fi
ls "$out"/kubernetes_*.orig.tar.gz
