#!/usr/bin/env bash
# Compile Kubernetes 1.20.2 (and pause) inside the
# builder image. Inputs: BUILDER (image), SRC_DIR (source package), OUT (binaries land in OUT/bin).
. "$(dirname "$0")/lib.sh"
: "${BUILDER:?}" "${SRC_DIR:?}" "${OUT:?}" "${KUBE_VERSION:=v1.20.2}" "${KUBE_COMMIT:=faecb196815e248d3ecfb03c680a4507229c2a56}"
OUT="$OUT/bin"
mkdir -p "$OUT" "$CACHE_DIR/go-build-cache"
log "compiling kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy pause (several minutes on 2 cores)"
docker run --rm \
  -v "$SRC_DIR":/src:ro -v "$OUT":/out -v "$CACHE_DIR/go-build-cache":/root/.cache/go-build \
  -e KUBE_VERSION="$KUBE_VERSION" -e KUBE_COMMIT="$KUBE_COMMIT" \
  "$BUILDER" bash -euo pipefail -c '
    export PATH=/usr/lib/go-1.15/bin:$PATH CGO_ENABLED=0 GOFLAGS=-mod=vendor GOPROXY=off
    export KUBE_GIT_VERSION=$KUBE_VERSION KUBE_GIT_COMMIT=$KUBE_COMMIT KUBE_GIT_TREE_STATE=clean
    mkdir -p /build && tar -xzf /src/kubernetes_*.orig.tar.gz -C /build
    cd /build/kubernetes-*
    echo "  [k8s] make generated_files" >&2
    make generated_files >/out/generated_files.log 2>&1 || { tail -30 /out/generated_files.log >&2; exit 1; }
    minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
    flags=""
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      flags="$flags -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitCommit=$KUBE_COMMIT -X $pkg.gitTreeState=clean"
      flags="$flags -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.buildDate=2021-01-13T13:20:00Z"
    done
    for cmd in cmd/kubeadm cmd/kubelet cmd/kubectl cmd/kube-apiserver cmd/kube-controller-manager \
               cmd/kube-scheduler cmd/kube-proxy; do
      echo "  [k8s] go build ./$cmd" >&2
      go build -trimpath -ldflags "-s -w $flags" -o /out/ ./$cmd
    done
    gcc -Os -static -DVERSION=v3.2 -o /out/pause build/pause/linux/pause.c
    strip /out/pause
  '
ls "$OUT"
