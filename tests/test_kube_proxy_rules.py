# ruff: noqa: E501, E101, W191 (the samples keep the tools' own line lengths and tabs)
"""kube-proxy's rules as SVC-18 reads them: iptables-save (IPv4 and IPv6) and nftables mode's
`kube-proxy` table. The rule texts are samples in the tools' own output format (no cluster)."""

from __future__ import annotations

from clusterproof.jigs import kube_proxy
from clusterproof.jigs.kube_proxy import NodeRules

IPTABLES_V4 = """\
*nat
-A KUBE-SERVICES -d 10.96.12.34/32 -p tcp -m comment --comment "ns1/svc-1 cluster IP" -m tcp --dport 9000 -j KUBE-SVC-AAAA
-A KUBE-SEP-BBBB -p tcp -m comment --comment "ns1/svc-1" -m tcp -j DNAT --to-destination 10.244.1.5:8080
-A KUBE-SEP-CCCC -p tcp -m comment --comment "ns1/svc-1" -m tcp -j DNAT --to-destination 10.244.2.7:8080
COMMIT
"""
IPTABLES_V6 = """\
*nat
-A KUBE-SERVICES -d fd00:10:96::1234/128 -p tcp -m comment --comment "ns1/svc-1 cluster IP" -m tcp --dport 9000 -j KUBE-SVC-DDDD
-A KUBE-SEP-EEEE -p tcp -m comment --comment "ns1/svc-1" -m tcp -j DNAT --to-destination [fd00:10:244:1::5]:8080
COMMIT
"""
NFTABLES = """\
table ip kube-proxy {
	comment "rules for kube-proxy"
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "ClusterIP, ExternalIP and LoadBalancer IP traffic"
		elements = { 10.96.0.1 . tcp . 443 : goto service-2QRHZV4L-default/kubernetes/tcp/https,
			     10.96.12.34 . tcp . 9000 : goto service-ULMVA6XW-ns1/svc-1/tcp/ }
	}

	chain service-ULMVA6XW-ns1/svc-1/tcp/ {
		ip daddr 10.96.12.34 tcp dport 9000 ip saddr != 10.244.0.0/16 jump mark-for-masquerade
		numgen random mod 2 vmap { 0 : goto endpoint-5OJB2KTY-ns1/svc-1/tcp/__10.244.1.5/8080, 1 : goto endpoint-6PKC3LUZ-ns1/svc-1/tcp/__10.244.2.7/8080 }
	}

	chain endpoint-5OJB2KTY-ns1/svc-1/tcp/__10.244.1.5/8080 {
		ip saddr 10.244.1.5 jump mark-for-masquerade
		meta l4proto tcp dnat to 10.244.1.5:8080
	}

	chain endpoint-6PKC3LUZ-ns1/svc-1/tcp/__10.244.2.7/8080 {
		ip saddr 10.244.2.7 jump mark-for-masquerade
		meta l4proto tcp dnat to 10.244.2.7:8080
	}

	chain endpoint-7QLD4MVA-ns1/svc-10/tcp/__10.244.2.9/8080 {
		meta l4proto tcp dnat to 10.244.2.9:8080
	}
}
"""


def test_iptables_rules_of_a_service_in_either_family():
    """SVC-18 read IPv4 only (`-d <ip>/32`): an IPv6 ClusterIP is `/128` in ip6tables-save, and
    its DNAT destination `[ip]:port`."""
    v4 = kube_proxy.iptables_service_rules(IPTABLES_V4 + IPTABLES_V6, "ns1", "svc-1", "10.96.12.34", 9000)
    assert v4.present and v4.destinations == {"10.244.1.5:8080", "10.244.2.7:8080", "[fd00:10:244:1::5]:8080"}
    v6 = kube_proxy.iptables_service_rules(IPTABLES_V6, "ns1", "svc-1", "fd00:10:96::1234", 9000)
    assert v6.present and v6.destinations == {"[fd00:10:244:1::5]:8080"}
    assert not kube_proxy.iptables_service_rules(IPTABLES_V6, "ns1", "svc-1", "fd00:10:96::1234", 80).present


def test_nftables_rules_of_a_service_are_its_service_ips_element_and_its_endpoint_chains():
    """#24 9: in nftables mode the ClusterIP is an element of the service-ips map, the pods the
    `dnat to` of its endpoint chains (another Service whose name starts the same is not it)."""
    found = kube_proxy.nft_service_rules(NFTABLES, "ns1", "svc-1", "10.96.12.34", 9000)
    assert found.portal == ("10.96.12.34 . tcp . 9000 : goto service-ULMVA6XW-ns1/svc-1/tcp/",)
    assert found.destinations == {"10.244.1.5:8080", "10.244.2.7:8080"}
    gone = NFTABLES.replace("10.96.12.34 . tcp . 9000 : goto service-ULMVA6XW-ns1/svc-1/tcp/ ", "")
    assert not kube_proxy.nft_service_rules(gone, "ns1", "svc-1", "10.96.12.34", 9000).present
    assert not kube_proxy.nft_service_rules(NFTABLES, "ns1", "svc-1", "10.96.12.34", 80).present


NFTABLES_137 = """\
table ip kube-proxy {
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = { 10.96.0.10 . udp . 53 : goto service-FY5PMXPG-kube-system/kube-dns/udp/dns,
			     10.96.233.236 . tcp . 9000 : goto service-ULMVA6XW-ns1/svc-1/tcp/,
			     10.96.0.1 . tcp . 443 : goto service-2QRHZV4L-default/kubernetes/tcp/https }
	}

	chain service-2QRHZV4L-default/kubernetes/tcp/https {
		meta l4proto tcp dnat to 172.20.0.11:6443
	}

	chain service-ULMVA6XW-ns1/svc-1/tcp/ {
		meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.244.1.14 . 8080, 1 : 10.244.2.23 . 8080 }
	}
}
"""
NFTABLES_137_V6 = """\
table ip6 kube-proxy {
	map service-ips {
		elements = { fd00:10:96::e9ec . tcp . 9000 : goto service-ULMVA6XW-ns1/svc-1/tcp/ }
	}

	chain service-ULMVA6XW-ns1/svc-1/tcp/ {
		meta l4proto tcp dnat ip6 to numgen random mod 2 map { 0 : fd00:10:244:1::e . 8080, 1 : fd00:10:244:2::17 . 8080 }
	}
}
"""


def test_nftables_rules_of_1_37_dnat_in_the_service_chain_itself():
    """kube-proxy 1.37 writes no endpoint chains: the service chain DNATs through a numgen map
    (seen on the offline 1.37 cluster in nftables mode), or to one address."""
    found = kube_proxy.nft_service_rules(NFTABLES_137, "ns1", "svc-1", "10.96.233.236", 9000)
    assert found.present and found.destinations == {"10.244.1.14:8080", "10.244.2.23:8080"}
    api = kube_proxy.nft_service_rules(NFTABLES_137, "default", "kubernetes", "10.96.0.1", 443)
    assert api.destinations == {"172.20.0.11:6443"}
    v6 = kube_proxy.nft_service_rules(NFTABLES_137_V6, "ns1", "svc-1", "fd00:10:96::e9ec", 9000)
    assert v6.present and v6.destinations == {"[fd00:10:244:1::e]:8080", "[fd00:10:244:2::17]:8080"}


def test_the_mode_is_what_the_nodes_rules_show():
    iptables = NodeRules(IPTABLES_V4, "")
    nftables = NodeRules("*nat\nCOMMIT\n", NFTABLES)
    neither = NodeRules("*nat\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n", "")
    assert (iptables.mode, nftables.mode, neither.mode) == ("iptables", "nftables", None)
    assert kube_proxy.mode_of({"a": neither, "b": iptables}) == "iptables"
    assert kube_proxy.mode_of({"a": iptables, "b": nftables}) == "nftables"  # stale chains of a switch
    assert kube_proxy.mode_of({"a": neither}) is None
