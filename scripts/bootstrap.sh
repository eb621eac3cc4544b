#!/usr/bin/env bash
# Install and start what clusterproof needs on a Debian machine, saying what it does and
# skipping what is already there: docker engine (started), kind (built from its Go module),
# tox, and the tools of the offline image build (debootstrap, rsync, gcc). Needs Go 1.26+.
# `--browser`: also Chromium and its chromedriver (Debian's chromium, chromium-driver), for the tests
# that open report.html in a browser (CI does). Safe to run again.
set -euo pipefail
say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: %s\n' "$*" >&2; exit 1; }

browser=""
for arg in "$@"; do
  case "$arg" in
    --browser) browser=1 ;;
    *) printf 'bootstrap: unknown argument %s (known: --browser)\n' "$arg" >&2; exit 2 ;;
  esac
done

KIND_VERSION=0.33.0
TOX_VERSION=4.67.15
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
have() { command -v "$1" >/dev/null 2>&1; }

apt_updated=""
apt_install() {
  have apt-get || die "no apt-get: install $* yourself (this script knows Debian/Ubuntu)"
  if [ -z "$apt_updated" ]; then say "apt-get update"; $SUDO apt-get update -qq; apt_updated=1; fi
  say "installing $*"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- docker engine ---
if ! have dockerd; then apt_install docker.io; fi
docker_up() { docker info >/dev/null 2>&1; }
wait_for() { for _ in $(seq 60); do "$@" && return 0; sleep 0.5; done; return 1; }
if ! docker_up && pgrep -x dockerd >/dev/null; then
  say "dockerd is running but not answering: waiting for it to come up or go away"
  wait_for sh -c 'docker info >/dev/null 2>&1 || ! pgrep -x dockerd >/dev/null' || true
fi
if ! docker_up; then
  # a daemon killed without its shutdown (end of a session) leaves its pid file behind
  pgrep -x dockerd >/dev/null || $SUDO rm -f /var/run/docker.pid
  say "starting dockerd (log: /var/log/clusterproof-dockerd.log)"
  if have systemctl && systemctl is-system-running >/dev/null 2>&1; then
    $SUDO systemctl start docker
  else
    $SUDO sh -c 'nohup setsid dockerd >/var/log/clusterproof-dockerd.log 2>&1 &'
  fi
  wait_for docker_up || die "dockerd did not come up: see /var/log/clusterproof-dockerd.log"
fi
say "docker $(docker version -f '{{.Server.Version}}' 2>/dev/null) is running"

# --- Go (kind and the offline images are built from Go modules) ---
GO_MIN=1.26
have go || die "no Go toolchain on PATH: install Go $GO_MIN or newer (kind and the offline images are built from Go modules)"
go_version=$(GOTOOLCHAIN=local go env GOVERSION | sed 's/^go//')
printf '%s\n%s\n' "$GO_MIN" "$go_version" | sort -V -C \
  || die "Go $go_version is too old: install Go $GO_MIN or newer"
say "go $go_version"

# --- kind, built from its Go module (v0.33: kubeadm config v1beta4 for Kubernetes 1.36+) ---
kind_version() { kind version 2>/dev/null | awk '{print $2}'; }
if [ "$(kind_version)" != "v$KIND_VERSION" ]; then
  [ -z "$(kind_version)" ] || say "kind $(kind_version) found: installing v$KIND_VERSION in front of it"
  say "building kind v$KIND_VERSION from the Go module proxy (go install sigs.k8s.io/kind@v$KIND_VERSION)"
  log=$(mktemp)
  $SUDO env "PATH=$PATH" GOBIN=/usr/local/bin CGO_ENABLED=0 \
    go install "sigs.k8s.io/kind@v$KIND_VERSION" >"$log" 2>&1 \
    || { tail -5 "$log" >&2; die "could not build kind v$KIND_VERSION (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"; }
  rm -f "$log"
  hash -r
fi
[ "$(command -v kind)" = /usr/local/bin/kind ] || [ "$(kind_version)" = "v$KIND_VERSION" ] \
  || die "another kind comes first on PATH ($(command -v kind), $(kind_version)): put /usr/local/bin first"
say "$(kind version)"

# --- offline image build tools ---
for tool in debootstrap rsync; do have "$tool" || apt_install "$tool"; done
# pause is compiled static from the release's pause.c
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] && have gcc || apt_install gcc libc6-dev

# --- a browser for report.html's tests (--browser) ---
if [ -n "$browser" ]; then
  have chromium && have chromedriver || apt_install chromium chromium-driver
  say "$(chromium --version 2>/dev/null | head -1), $(chromedriver --version | awk '{print $1, $2}')"
fi

# --- tox ---
if ! have tox; then
  say "installing tox $TOX_VERSION (pip)"
  log=$(mktemp)
  python3 -m pip install -q --disable-pip-version-check "tox==$TOX_VERSION" >"$log" 2>&1 \
    || { cat "$log" >&2; die "pip could not install tox"; }
  rm -f "$log"
  command -v pyenv >/dev/null 2>&1 && pyenv rehash
fi
say "tox $(tox --version | awk '{print $1}') ready"
