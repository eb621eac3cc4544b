"""Addresses in URLs and host:port, IPv4 and IPv6 (#24 8: URLs were built without brackets)."""

from __future__ import annotations

from clusterproof import urls
from clusterproof.jigs import pod_network


def test_an_ipv6_address_goes_in_brackets_in_urls_and_host_port():
    assert urls.url("10.96.0.10", 80) == "http://10.96.0.10:80/"
    assert urls.url("fd00:10:96::a", 80, "/hostname") == "http://[fd00:10:96::a]:80/hostname"
    assert urls.url("fd00::1", 443, "/", "https") == "https://[fd00::1]:443/"
    assert urls.host_port("fd00::1", 8080) == "[fd00::1]:8080"
    assert urls.host_port("[fd00::1]", 8080) == "[fd00::1]:8080"
    assert urls.host_port("node-1", 8080) == "node-1:8080"


def test_the_peer_address_a_server_reports_is_read_back_to_the_address():
    """SVC-20 cut agnhost's /clientip at the last colon: `[fd00::5]:4321` became `[fd00::5]`."""
    assert urls.host_of("10.244.1.5:4321") == "10.244.1.5"
    assert urls.host_of("[fd00:10:244:1::5]:4321") == "fd00:10:244:1::5"
    assert urls.host_of("fd00:10:244:1::5") == "fd00:10:244:1::5"
    assert urls.host_of("10.244.1.5") == "10.244.1.5"


def test_families_and_host_prefixes():
    assert (urls.family("10.96.0.1"), urls.family("fd00:10:244::/56")) == (4, 6)
    assert urls.host_prefix("10.96.0.1") == "10.96.0.1/32"
    assert urls.host_prefix("fd00:10:96::1") == "fd00:10:96::1/128"


def test_a_containers_global_addresses_are_both_families_without_link_local():
    """SVC-19 read `ip -4` only: an IPv6 pod IP was never seen. `ip -o addr show scope global`
    lists both families' global addresses (link-local is another scope)."""
    listing = (
        "2: eth0    inet 10.244.1.5/24 brd 10.244.1.255 scope global eth0\\       valid_lft forever\n"
        "2: eth0    inet6 fd00:10:244:1:0:0:0:5/64 scope global \\       valid_lft forever\n"
    )
    assert pod_network.addresses_in(listing) == {"10.244.1.5", "fd00:10:244:1::5"}
