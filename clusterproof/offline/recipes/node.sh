#!/usr/bin/env bash
# The kind node image: node rootfs + kubeadm/kubelet/kubectl + units + entrypoint, with
# every image a cluster and the suites need preloaded in containerd's k8s.io namespace.
# Inputs: NODE_ROOTFS, BIN (kubeadm, kubelet, kubectl), RUNTIME_BIN (containerd, its runc shim, ctr),
# IMAGES_TAR, TAG, KUBE_VERSION, CONTAINERD_CONFIG (a file in files/), STORAGE_MANIFEST (a file in
# files/ that kind applies as the default storage, or empty: kind's host-path fallback).
. "$(dirname "$0")/lib.sh"
: "${NODE_ROOTFS:?}" "${BIN:?}" "${RUNTIME_BIN:?}" "${IMAGES_TAR:?}" "${TAG:?}" "${KUBE_VERSION:?}" "${CONTAINERD_CONFIG:?}"
export DOCKER_BUILDKIT=0
ctx=$(mktemp -d "$CACHE_DIR/node.XXXXXX")
preload="cp-preload-$$"
trap 'rm -rf "$ctx"; docker rm -f "$preload" >/dev/null 2>&1 || true' EXIT
files="$(dirname "$0")/files"
cp "$BIN/kubeadm" "$BIN/kubelet" "$BIN/kubectl" "$ctx/"
cp "$files/entrypoint" "$files/kubelet.service" "$files/10-kubeadm.conf" "$files/containerd.service" "$ctx/"
cp "$files/$CONTAINERD_CONFIG" "$ctx/containerd.toml"
mkdir -p "$ctx/runtime" "$ctx/manifests"
cp "$RUNTIME_BIN"/* "$ctx/runtime/"
[ -z "${STORAGE_MANIFEST:-}" ] || cp "$files/$STORAGE_MANIFEST" "$ctx/manifests/default-storage.yaml"
echo "$KUBE_VERSION" >"$ctx/version"

cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $NODE_ROOTFS
COPY kubeadm kubelet kubectl /usr/bin/
COPY runtime/ /usr/bin/
COPY manifests/ /kind/manifests/
COPY containerd.service /etc/systemd/system/containerd.service
COPY entrypoint /usr/local/bin/entrypoint
COPY kubelet.service /etc/systemd/system/kubelet.service
COPY 10-kubeadm.conf /etc/systemd/system/kubelet.service.d/10-kubeadm.conf
COPY containerd.toml /etc/containerd/config.toml
COPY version /kind/version
RUN set -e; chmod 0755 /usr/local/bin/entrypoint /usr/bin/kubeadm /usr/bin/kubelet /usr/bin/kubectl /usr/bin/containerd* /usr/bin/ctr; \
    mkdir -p /etc/systemd/system/multi-user.target.wants /opt/cni /etc/cni/net.d /var/lib/kubelet /etc/kubernetes/manifests; \
    ln -sf /etc/systemd/system/kubelet.service /etc/systemd/system/multi-user.target.wants/kubelet.service; \
    ln -sf /etc/systemd/system/containerd.service /etc/systemd/system/multi-user.target.wants/containerd.service; \
    ln -sfn /usr/lib/cni /opt/cni/bin; \
    for u in systemd-sysctl.service systemd-firstboot.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount \
             systemd-modules-load.service systemd-logind.service getty@tty1.service console-getty.service getty.target \
             systemd-udevd.service systemd-udev-trigger.service systemd-remount-fs.service dev-hugepages.mount \
             sys-kernel-debug.mount sys-kernel-tracing.mount systemd-journald-audit.socket apt-daily.timer \
             apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer nftables.service; do ln -sf /dev/null /etc/systemd/system/\$u; done; \
    rm -f /etc/machine-id /var/lib/dbus/machine-id; touch /etc/machine-id
DOCKERFILE
log "assembling the node filesystem"
docker build -q -t "$TAG-stage" "$ctx" >"$ctx/build.log" 2>&1 || { cat "$ctx/build.log" >&2; die "docker build of the node stage failed"; }

log "preloading $(wc -c <"$IMAGES_TAR" | numfmt --to=iec) of images into containerd (k8s.io)"
# --init: containerd must be reaped when stopped, or it stays a zombie under sleep
docker run -d --init --name "$preload" --entrypoint sleep -v "$IMAGES_TAR":/images.tar:ro "$TAG-stage" infinity >/dev/null
docker exec "$preload" bash -euo pipefail -c '
  mkdir -p /run/containerd
  containerd >/tmp/containerd.log 2>&1 & pid=$!
  for _ in $(seq 100); do [ -S /run/containerd/containerd.sock ] && break; sleep 0.1; done
  [ -S /run/containerd/containerd.sock ] || { cat /tmp/containerd.log; exit 1; }
  ctr -n k8s.io images import --no-unpack --all-platforms /images.tar >/dev/null
  ctr -n k8s.io images ls -q | grep -v '^sha256:'
  kill "$pid"; wait "$pid" || true
  rm -rf /tmp/* /run/containerd' | sed 's/^/    preloaded /' >&2 || die "preloading images into containerd failed"
docker stop -t 5 "$preload" >/dev/null
docker commit "$preload" "$TAG-preloaded" >/dev/null

cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $TAG-preloaded
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
CMD []
LABEL org.clusterproof.recipe="$RECIPE_HASH"
DOCKERFILE
docker build -q -t "$TAG" - <"$ctx/Dockerfile" >"$ctx/build.log" 2>&1 || { cat "$ctx/build.log" >&2; die "docker build of the final node image failed"; }
docker rmi "$TAG-stage" "$TAG-preloaded" >/dev/null 2>&1 || true
log "node image $TAG ($(docker image inspect -f '{{.Size}}' "$TAG" | numfmt --to=iec))"
