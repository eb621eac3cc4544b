#!/usr/bin/env bash
# The images a 1.20.2 cluster and the suites need, each a one-layer import of a small
# directory, named as upstream names them so manifests and kubeadm find them unchanged.
# Inputs: BIN (k8s binaries), NODE_ROOTFS, WORKLOAD_ROOTFS (images), OUT (images.tar lands here),
# RECIPE_HASH (recorded as a label).
. "$(dirname "$0")/lib.sh"
: "${BIN:?}" "${NODE_ROOTFS:?}" "${WORKLOAD_ROOTFS:?}" "${OUT:?}" "${RECIPE_HASH:?}" "${KUBE_VERSION:=v1.20.2}"
work=$(mktemp -d "$CACHE_DIR/images.XXXXXX")
trap 'rm -rf "$work"' EXIT
label="LABEL org.clusterproof.recipe=$RECIPE_HASH"
path_env='ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

import_dir() {  # import_dir DIR REF [--change ...]
  local dir=$1 ref=$2; shift 2
  tar -C "$dir" -c . | docker import --change "$label" --change "$path_env" "$@" - "$ref" >/dev/null
  log "image $ref ($(du -sh "$dir" | cut -f1))"
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

# --- control plane (tags kubeadm v1.20.2 asks for) ---
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  mkdir -p "$work/$c/usr/local/bin"; cp "$BIN/$c" "$work/$c/usr/local/bin/"
  import_dir "$work/$c" "k8s.gcr.io/$c:$KUBE_VERSION"
done

# kube-proxy: its binary plus both iptables backends; a wrapper picks the one the host uses
kp="$work/kube-proxy"
copy_from_rootfs "$NODE_ROOTFS" "$kp" /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi \
  /usr/sbin/conntrack '/usr/lib/x86_64-linux-gnu/xtables/*.so' /bin/dash '/usr/lib/x86_64-linux-gnu/libnss_files*'
mkdir -p "$kp/usr/local/bin" "$kp/bin" "$kp/run" "$kp/tmp" "$kp/var/lib/iptables"
cp "$BIN/kube-proxy" "$kp/usr/local/bin/"
ln -sf dash "$kp/bin/sh"
install -m 0755 "$(dirname "$0")/files/iptables-wrapper" "$kp/usr/sbin/iptables-wrapper"
for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -sf iptables-wrapper "$kp/usr/sbin/$t"
done
import_dir "$kp" "k8s.gcr.io/kube-proxy:$KUBE_VERSION"

# etcd: Debian's etcd-server 3.4 under the name kubeadm 1.20 expects (3.4.13-0)
debdir="$CACHE_DIR/debs"; mkdir -p "$debdir"
if ! ls "$debdir"/etcd-server_3.4*.deb >/dev/null 2>&1; then
  apt_private_update
  (cd "$debdir" && apt_private download -qq etcd-server=3.4.23-4+b4) \
    || die "could not download Debian's etcd-server 3.4 from $DEBIAN_MIRROR"
fi
et="$work/etcd"; mkdir -p "$et/x" "$et/root/usr/local/bin" "$et/root/var/lib/etcd"
dpkg-deb -x "$debdir"/etcd-server_3.4*.deb "$et/x"
cp "$et/x/usr/bin/etcd" "$et/root/usr/local/bin/etcd"
copy_from_rootfs "$NODE_ROOTFS" "$et/root" '/lib64/ld-linux-x86-64.so.2' '/usr/lib/x86_64-linux-gnu/libc.so.6'
import_dir "$et/root" "k8s.gcr.io/etcd:3.4.13-0"

# pause, from the source tree's pause.c
pz="$work/pause"; mkdir -p "$pz"; cp "$BIN/pause" "$pz/pause"
import_dir "$pz" "k8s.gcr.io/pause:3.2" --change 'ENTRYPOINT ["/pause"]'
docker tag k8s.gcr.io/pause:3.2 registry.k8s.io/pause:3.2

# --- workloads ---
# agnhost: upstream's e2e test binary on a Debian userland with what its image adds (curl, nc, dig, ip)
wl="$work/agnhost"; mkdir -p "$wl"
docker create --name "cp-export-$$" "$WORKLOAD_ROOTFS" true >/dev/null
docker export "cp-export-$$" | tar -C "$wl" -x
docker rm "cp-export-$$" >/dev/null
cp "$BIN/agnhost" "$wl/agnhost"; ln -sf agnhost "$wl/agnhost-2"; mkdir -p "$wl/uploads"
# busybox applets for the commands upstream's specs use (its wget crashes here: curl covers it)
present() { for d in bin usr/bin sbin usr/sbin; do [ -e "$wl/$d/$1" ] || [ -L "$wl/$d/$1" ] && return 0; done; return 1; }
for a in $("$wl/bin/busybox" --list); do
  present "$a" || ln -s busybox "$wl/bin/$a"
done
rm -rf "$wl"/usr/share/doc "$wl"/usr/share/man "$wl"/usr/share/locale "$wl"/var/cache/apt/*
import_dir "$wl" "registry.k8s.io/e2e-test-images/agnhost:2.21" \
  --change 'ENTRYPOINT ["/agnhost"]' --change 'CMD ["pause"]'
docker tag registry.k8s.io/e2e-test-images/agnhost:2.21 k8s.gcr.io/e2e-test-images/agnhost:2.21

# busybox 1.29's role: Debian's busybox-static, applets linked, nothing else
bb="$work/busybox"; mkdir -p "$bb/bin" "$bb/tmp" "$bb/etc"
cp "$wl/bin/busybox" "$bb/bin/busybox"
for a in $("$bb/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$bb/bin/$a"; done
[ -x "$bb/bin/busybox" ] && [ ! -L "$bb/bin/busybox" ] || die "busybox image lost its binary"
echo 'root:x:0:0:root:/root:/bin/sh' >"$bb/etc/passwd"
import_dir "$bb" "docker.io/library/busybox:1.29" --change 'CMD ["sh"]'

refs="k8s.gcr.io/kube-apiserver:$KUBE_VERSION k8s.gcr.io/kube-controller-manager:$KUBE_VERSION
k8s.gcr.io/kube-scheduler:$KUBE_VERSION k8s.gcr.io/kube-proxy:$KUBE_VERSION k8s.gcr.io/etcd:3.4.13-0
k8s.gcr.io/pause:3.2 registry.k8s.io/pause:3.2 registry.k8s.io/e2e-test-images/agnhost:2.21
k8s.gcr.io/e2e-test-images/agnhost:2.21 docker.io/library/busybox:1.29"
mkdir -p "$OUT"
# shellcheck disable=SC2086
docker save -o "$OUT/images.tar.tmp" $refs
mv "$OUT/images.tar.tmp" "$OUT/images.tar"
echo $refs >"$OUT/refs"
# the images this recipe replaced under the same names are dangling now
docker image prune -f --filter "label=org.clusterproof.recipe" >/dev/null
log "saved $(echo $refs | wc -w) images to $OUT/images.tar ($(du -sh "$OUT/images.tar" | cut -f1))"
