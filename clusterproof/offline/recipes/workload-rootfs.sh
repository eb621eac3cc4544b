#!/usr/bin/env bash
# Userland of the workload images: what upstream's agnhost image adds to its base
# (curl, nc, dig, ip, bash) plus busybox applets and git for an in-cluster git server.
. "$(dirname "$0")/lib.sh"
debootstrap_image bookworm "$TAG" \
  curl,netcat-openbsd,iproute2,bind9-dnsutils,bash,busybox-static,git,ca-certificates,procps
