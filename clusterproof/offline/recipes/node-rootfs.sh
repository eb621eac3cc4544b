#!/usr/bin/env bash
# The node's operating system: Debian bookworm minbase with systemd, containerd 1.6
# (kubelet 1.20 speaks CRI v1alpha2, gone in containerd 2), runc, iptables and the
# tools kubeadm's checks and kube-proxy use. Git is there so gitRepo volumes can clone.
. "$(dirname "$0")/lib.sh"
debootstrap_image bookworm "$TAG" \
  systemd,systemd-sysv,dbus,containerd,runc,iptables,iproute2,conntrack,ethtool,socat,util-linux,mount,kmod,ca-certificates,containernetworking-plugins,procps,bash,git,ebtables,libseccomp2,pigz
