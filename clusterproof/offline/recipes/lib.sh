# Shared by every recipe: strict mode, logging, and the private apt configuration
# that reaches the other Debian suites without touching the host's own sources.
set -euo pipefail
log() { printf '  [%s] %s\n' "${STEP:-build}" "$*" >&2; }
die() { printf 'clusterproof-build: %s: %s\n' "${STEP:-build}" "$*" >&2; exit 1; }

: "${CACHE_DIR:?CACHE_DIR must be set by the build driver}"
: "${DEBIAN_MIRROR:=http://deb.debian.org/debian}"

apt_private() {
  # apt with a private sources list and state dir: bookworm deb-src, bullseye, trixie
  local d="$CACHE_DIR/apt"
  mkdir -p "$d/lists/partial" "$d/archives/partial"
  cat >"$d/sources.list" <<SRC
deb $DEBIAN_MIRROR bookworm main
deb-src $DEBIAN_MIRROR bookworm main
deb $DEBIAN_MIRROR bullseye main
deb $DEBIAN_MIRROR trixie main
SRC
  apt-get -o Dir::Etc::sourcelist="$d/sources.list" -o Dir::Etc::sourceparts=/dev/null \
    -o Dir::State::Lists="$d/lists" -o Dir::Cache::Archives="$d/archives" \
    -o APT::Sandbox::User=root "$@"
}

apt_private_update() {
  local stamp="$CACHE_DIR/apt/updated"
  if [ -z "$(find "$stamp" -mmin -720 2>/dev/null)" ]; then
    apt_private update -qq || die "apt mirror $DEBIAN_MIRROR unreachable (apt-get update failed); set DEBIAN_MIRROR to a reachable Debian mirror"
    touch "$stamp"
  fi
}

# debootstrap a minbase rootfs and import it as a one-layer image
debootstrap_image() {
  local suite=$1 tag=$2 include=$3 root
  command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
  root=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
  trap 'rm -rf "$root"' RETURN
  log "debootstrap $suite (minbase) into $root"
  debootstrap --variant=minbase --include="$include" "$suite" "$root" "$DEBIAN_MIRROR" \
    >"$CACHE_DIR/debootstrap-$suite.log" 2>&1 \
    || die "debootstrap $suite failed (see $CACHE_DIR/debootstrap-$suite.log)"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import - "$tag" >/dev/null
}
