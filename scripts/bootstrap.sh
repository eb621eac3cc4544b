#!/usr/bin/env bash
# Install and start what clusterproof needs on a Debian machine, saying what it does and
# skipping what is already there: docker engine (started), kind, tox, and the tools of
# the offline image build (debootstrap, rsync). Safe to run again.
set -euo pipefail
say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: %s\n' "$*" >&2; exit 1; }

KIND_VERSION=0.27.0
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

# --- kind (Debian trixie's package: a static binary that installs on bookworm) ---
if ! have kind || [ "$(kind version 2>/dev/null | awk '{print $2}')" != "v$KIND_VERSION" ]; then
  if have kind; then say "kind $(kind version | awk '{print $2}') found; installing v$KIND_VERSION beside it is up to you"; else
    have apt-get || die "kind is missing: install kind v$KIND_VERSION (https://kind.sigs.k8s.io)"
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp/lists/partial" "$tmp/archives/partial"
    echo "deb http://deb.debian.org/debian trixie main" >"$tmp/sources.list"
    aptx=(-o Dir::Etc::sourcelist="$tmp/sources.list" -o Dir::Etc::sourceparts=/dev/null
          -o Dir::State::Lists="$tmp/lists" -o Dir::Cache::Archives="$tmp/archives" -o APT::Sandbox::User=root)
    say "installing kind v$KIND_VERSION from Debian trixie"
    $SUDO apt-get "${aptx[@]}" update -qq || die "Debian mirror unreachable: cannot fetch kind"
    (cd "$tmp" && $SUDO apt-get "${aptx[@]}" download -qq "kind=$KIND_VERSION*") || die "could not download kind"
    $SUDO dpkg -i "$tmp"/kind_*.deb >/dev/null
  fi
fi
say "$(kind version)"

# --- offline image build tools ---
for tool in debootstrap rsync; do have "$tool" || apt_install "$tool"; done

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
