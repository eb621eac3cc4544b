#!/usr/bin/env bash
# The images a cluster of one release and the suites need, each a one-layer import of a small
# directory, named as kubeadm of that release and upstream's manifests name them.
# Inputs: BIN (kube binaries + pause), ETCD_BIN, AGNHOST_BIN, COREDNS_BIN, LOCAL_PATH_BIN and
# TRAEFIK_BIN (Go-built releases only), NODE_ROOTFS, WORKLOAD_ROOTFS (images), REGISTRY, KUBE_VERSION,
# ETCD_TAG, COREDNS_TAG, PAUSE_TAG, AGNHOST_TAG, LOCAL_PATH_TAG, TRAEFIK_TAG, OUT, RECIPE_HASH.
. "$(dirname "$0")/lib.sh"
: "${BIN:?}" "${ETCD_BIN:?}" "${AGNHOST_BIN:?}" "${NODE_ROOTFS:?}" "${WORKLOAD_ROOTFS:?}" "${OUT:?}"
: "${RECIPE_HASH:?}" "${REGISTRY:?}" "${KUBE_VERSION:?}" "${ETCD_TAG:?}" "${PAUSE_TAG:?}" "${AGNHOST_TAG:?}"
work=$(mktemp -d "$CACHE_DIR/images.XXXXXX")
trap 'rm -rf "$work"' EXIT
label="LABEL org.clusterproof.recipe=$RECIPE_HASH"
path_env='ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
refs=()

import_dir() {  # import_dir DIR REF [--change ...]
  local dir=$1 ref=$2; shift 2
  tar -C "$dir" -c . | docker import --change "$label" --change "$path_env" "$@" - "$ref" >/dev/null
  refs+=("$ref")
  log "image $ref ($(du -sh "$dir" | cut -f1))"
}

alias_ref() {  # alias_ref EXISTING NEW: the same image under a second name
  docker tag "$1" "$2"; refs+=("$2")
}

# Copy binaries with the shared libraries they link, from a rootfs image, into a directory.
copy_from_rootfs() {  # copy_from_rootfs IMAGE DEST PATH...
  local image=$1 dest=$2; shift 2
  mkdir -p "$dest"
  docker run --rm -v "$dest":/dest "$image" bash -euo pipefail -c '
    for f in "$@"; do
      for p in $f; do
        [ -e "$p" ] || continue
        mkdir -p "/dest$(dirname "$p")"; cp -L --remove-destination "$p" "/dest$p"
        { ldd "$p" 2>/dev/null || true; } | { grep -o "/[^ ]*" || true; } | while read -r lib; do
          mkdir -p "/dest$(dirname "$lib")"; cp -L --remove-destination "$lib" "/dest$lib"
        done
      done
    done' _ "$@"
}

# --- control plane (tags kubeadm of this release asks for) ---
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  mkdir -p "$work/$c/usr/local/bin"; cp "$BIN/$c" "$work/$c/usr/local/bin/"
  import_dir "$work/$c" "$REGISTRY/$c:$KUBE_VERSION"
done

# kube-proxy: its binary plus both iptables backends (a wrapper picks the one the host uses) and
# nft, which its nftables mode runs
kp="$work/kube-proxy"
copy_from_rootfs "$NODE_ROOTFS" "$kp" /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi /usr/sbin/nft \
  /usr/sbin/conntrack '/usr/lib/x86_64-linux-gnu/xtables/*.so' /bin/dash '/usr/lib/x86_64-linux-gnu/libnss_files*' \
  /etc/protocols /etc/services
mkdir -p "$kp/usr/local/bin" "$kp/bin" "$kp/run" "$kp/tmp" "$kp/var/lib/iptables"
cp "$BIN/kube-proxy" "$kp/usr/local/bin/"
ln -sf dash "$kp/bin/sh"
install -m 0755 "$(dirname "$0")/files/iptables-wrapper" "$kp/usr/sbin/iptables-wrapper"
for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -sf iptables-wrapper "$kp/usr/sbin/$t"
done
import_dir "$kp" "$REGISTRY/kube-proxy:$KUBE_VERSION"

# etcd (Go-built binaries are static; Debian's 3.4 links libc, which comes along)
et="$work/etcd"; mkdir -p "$et/usr/local/bin" "$et/var/lib/etcd"
cp "$ETCD_BIN/etcd" "$et/usr/local/bin/etcd"
copy_from_rootfs "$NODE_ROOTFS" "$et" '/lib64/ld-linux-x86-64.so.2' '/usr/lib/x86_64-linux-gnu/libc.so.6'
import_dir "$et" "$REGISTRY/etcd:$ETCD_TAG"

# CoreDNS (kubeadm's Deployment runs it as /coredns -conf /etc/coredns/Corefile)
if [ -n "${COREDNS_BIN:-}" ]; then
  cd_="$work/coredns"; mkdir -p "$cd_/etc" "$cd_/tmp"; cp "$COREDNS_BIN/coredns" "$cd_/coredns"
  echo 'nonroot:x:65532:65532::/home/nonroot:/sbin/nologin' >"$cd_/etc/passwd"
  import_dir "$cd_" "$REGISTRY/coredns/coredns:$COREDNS_TAG" --change 'ENTRYPOINT ["/coredns"]'
fi

# pause, from the release tree's pause.c
pz="$work/pause"; mkdir -p "$pz"; cp "$BIN/pause" "$pz/pause"
import_dir "$pz" "$REGISTRY/pause:$PAUSE_TAG" --change 'ENTRYPOINT ["/pause"]'
[ "$REGISTRY" = registry.k8s.io ] || alias_ref "$REGISTRY/pause:$PAUSE_TAG" "registry.k8s.io/pause:$PAUSE_TAG"

# --- workloads ---
# agnhost: upstream's e2e test binary on a Debian userland with what its image adds (curl, nc, dig, ip)
wl="$work/agnhost"; mkdir -p "$wl"
docker create --name "cp-export-$$" "$WORKLOAD_ROOTFS" true >/dev/null
docker export "cp-export-$$" | tar -C "$wl" -x
docker rm "cp-export-$$" >/dev/null
cp "$AGNHOST_BIN/agnhost" "$wl/agnhost"; ln -sf agnhost "$wl/agnhost-2"; mkdir -p "$wl/uploads"
# busybox applets for the commands upstream's specs use (its wget crashes here: curl covers it)
present() { for d in bin usr/bin sbin usr/sbin; do [ -e "$wl/$d/$1" ] || [ -L "$wl/$d/$1" ] && return 0; done; return 1; }
for a in $("$wl/bin/busybox" --list); do
  present "$a" || ln -s busybox "$wl/bin/$a"
done
rm -rf "$wl"/usr/share/doc "$wl"/usr/share/man "$wl"/usr/share/locale "$wl"/var/cache/apt/*
import_dir "$wl" "registry.k8s.io/e2e-test-images/agnhost:$AGNHOST_TAG" \
  --change 'ENTRYPOINT ["/agnhost"]' --change 'CMD ["pause"]'

# busybox 1.29's role: Debian's busybox-static, applets linked, nothing else
bb="$work/busybox"; mkdir -p "$bb/bin" "$bb/tmp" "$bb/etc"
cp "$wl/bin/busybox" "$bb/bin/busybox"
for a in $("$bb/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$bb/bin/$a"; done
[ -x "$bb/bin/busybox" ] && [ ! -L "$bb/bin/busybox" ] || die "busybox image lost its binary"
echo 'root:x:0:0:root:/root:/bin/sh' >"$bb/etc/passwd"
import_dir "$bb" "docker.io/library/busybox:1.29" --change 'CMD ["sh"]'

# local-path-provisioner: the default StorageClass's provisioner, as on stock kind
if [ -n "${LOCAL_PATH_BIN:-}" ]; then
  lp="$work/local-path"; mkdir -p "$lp/usr/bin" "$lp/tmp"
  cp "$LOCAL_PATH_BIN/local-path-provisioner" "$lp/usr/bin/"
  import_dir "$lp" "docker.io/rancher/local-path-provisioner:$LOCAL_PATH_TAG" \
    --change 'ENTRYPOINT ["/usr/bin/local-path-provisioner"]'
fi

# Traefik: the ingress controller of offline clusters (no ingress-nginx image can be built here), under
# the official image's name; a static binary, run as 65532 with a read-only root (its /tmp is a volume)
if [ -n "${TRAEFIK_BIN:-}" ]; then
  tf="$work/traefik"; mkdir -p "$tf/etc" "$tf/tmp"; chmod 1777 "$tf/tmp"
  cp "$TRAEFIK_BIN/traefik" "$tf/traefik"
  echo 'nonroot:x:65532:65532::/home/nonroot:/sbin/nologin' >"$tf/etc/passwd"
  import_dir "$tf" "docker.io/library/traefik:${TRAEFIK_TAG:?}" --change 'ENTRYPOINT ["/traefik"]' --change 'EXPOSE 80'
fi

mkdir -p "$OUT"
docker save -o "$OUT/images.tar.tmp" "${refs[@]}"
mv "$OUT/images.tar.tmp" "$OUT/images.tar"
echo "${refs[@]}" >"$OUT/refs"
# the images this recipe replaced under the same names are dangling now
docker image prune -f --filter "label=org.clusterproof.recipe" >/dev/null 2>&1 || true  # another build may be pruning
log "saved ${#refs[@]} images to $OUT/images.tar ($(du -sh "$OUT/images.tar" | cut -f1))"
