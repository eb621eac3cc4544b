#!/usr/bin/env bash
# Userland of the workload images: what upstream's agnhost image adds to its base
# (curl, nc, dig, ip, bash) plus busybox applets.
. "$(dirname "$0")/lib.sh"
debootstrap_image bookworm "$TAG" \
  curl,netcat-openbsd,iproute2,bind9-dnsutils,bash,busybox-static,ca-certificates,procps
