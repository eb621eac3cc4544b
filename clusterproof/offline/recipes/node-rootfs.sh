#!/usr/bin/env bash
# The node's operating system: Debian bookworm minbase with systemd, runc, iptables, nftables
# (kube-proxy's nftables mode, and `nft list` for the node checks) and the tools kubeadm's checks
# and kube-proxy use. Git is there so gitRepo volumes can clone.
# containerd is not here: each release's node image adds the one its kubelet needs
# (Go-built 2.x; Debian's 1.6 for the legacy 1.20, whose kubelet speaks CRI v1alpha2).
. "$(dirname "$0")/lib.sh"
debootstrap_image bookworm "$TAG" \
  systemd,systemd-sysv,dbus,runc,iptables,nftables,iproute2,conntrack,ethtool,socat,util-linux,mount,kmod,ca-certificates,containernetworking-plugins,procps,bash,git,ebtables,libseccomp2,pigz
