"""A test namespace is registered for deletion only once this run made it: a name already taken
(409) is someone else's. The API is a FAKE (create answers as told)."""

from types import SimpleNamespace

import pytest
from kubernetes.client import ApiException

from clusterproof.errors import ClusterproofError
from clusterproof.namespaces import create_namespace


class Core:
    def __init__(self, status=None):
        self.status = status
        self.created = []

    def create_namespace(self, body):
        if self.status:
            raise ApiException(status=self.status, reason="AlreadyExists")
        self.created.append(body.metadata.name)

    def read_namespaced_service_account(self, name, namespace):
        return SimpleNamespace(secrets=None)


def test_a_namespace_already_there_is_an_error_and_never_registered():
    registered = []
    cluster = SimpleNamespace(core=Core(409), server_version=(1, 37))
    with pytest.raises(ClusterproofError, match="namespace cp-x already exists: not this run's, left alone"):
        create_namespace(cluster, "cp-x", {}, created=registered.append)
    assert registered == []


def test_a_namespace_made_is_registered_before_the_wait_for_its_service_account():
    registered = []
    core = Core()
    cluster = SimpleNamespace(core=core, server_version=(1, 37))
    assert create_namespace(cluster, "cp-x", {"a": "b"}, created=registered.append) == "cp-x"
    assert core.created == registered == ["cp-x"]
