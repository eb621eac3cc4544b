#!/usr/bin/env bash
# Binaries from one Debian package (the legacy release's containerd 1.6 and etcd 3.4).
# Inputs: PACKAGE (name=version), BINARIES (names under /usr/bin), OUT.
. "$(dirname "$0")/lib.sh"
: "${PACKAGE:?}" "${BINARIES:?}" "${OUT:?}"
debdir="$CACHE_DIR/debs"; mkdir -p "$debdir" "$OUT/bin"
name=${PACKAGE%%=*}
if ! ls "$debdir/${name}_"*.deb >/dev/null 2>&1; then
  apt_private_update
  (cd "$debdir" && apt_private download -qq "$PACKAGE") || die "could not download Debian's $PACKAGE from $DEBIAN_MIRROR"
fi
x=$(mktemp -d "$CACHE_DIR/deb.XXXXXX"); trap 'rm -rf "$x"' EXIT
dpkg-deb -x "$debdir/${name}_"*.deb "$x"
for b in $BINARIES; do cp "$x/usr/bin/$b" "$OUT/bin/$b"; done
ls "$OUT/bin"
