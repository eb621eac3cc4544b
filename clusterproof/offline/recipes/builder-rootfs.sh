#!/usr/bin/env bash
# Build environment for Kubernetes 1.20.2: Debian bullseye, whose golang-1.15-go is the
# Go release 1.20 was built with. Everything compiles in here; the host toolchain is untouched.
. "$(dirname "$0")/lib.sh"
debootstrap_image bullseye "$TAG" \
  golang-1.15-go,make,rsync,gcc,libc6-dev,bash,diffutils,findutils,grep,sed,gawk,coreutils,tar,gzip,xz-utils,ca-certificates,git
