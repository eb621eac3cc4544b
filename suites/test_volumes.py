"""Pod volumes as the notes describe them: emptyDir, gitRepo, initContainer, hostPath ([000], [003]),
and what the API makes of [003]'s manifests printed without indentation (ERR-07)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pytest
import yaml

from clusterproof.api_answers import answer_to, post_yaml_as_written
from clusterproof.cluster import Cluster
from clusterproof.jigs import pods, volume
from clusterproof.jigs.pods import PodFiles
from clusterproof.jigs.volume import NodeFiles
from clusterproof.jigs.workload import pick_workers
from clusterproof.manifests import Manifests
from clusterproof.run import hash_of
from clusterproof.tracker import ResourceTracker
from clusterproof.verdicts import setup_step

POD_VOLUME_1 = "notes/volumes/pod-volume-1.yaml"
POD_VOLUME_2 = "notes/volumes/pod-volume-2.yaml"
HOSTPATH_TEMPLATE = "notes/volumes/hostpath-template.yaml"


# --- emptyDir --------------------------------------------------------------------------------


@pytest.mark.claim("VOL-01")
def test_emptydir_starts_empty_and_is_shared_by_containers_at_different_paths(
    manifests: Manifests, namespace: str, pod_files: PodFiles
) -> None:
    """An emptyDir MUST start empty and be shared by the pod's containers, even mounted at
    different paths (/mount1, /mount2) [000, 003].

    Observed: in the notes' pod-volume-1, container1's listing of /mount1 (empty), and the file
    container1 writes at /mount1 read by container2 at /mount2."""
    pods.start_pod(manifests, POD_VOLUME_1)

    assert pod_files.listing("pod-volume-1", "/mount1", "container1") == [], "the emptyDir is not empty at start"
    pod_files.write("pod-volume-1", "/mount1/from-container1", f"written in {namespace}", "container1")
    seen = pod_files.read("pod-volume-1", "/mount2/from-container1", "container2")
    assert seen == f"written in {namespace}", (
        f"container2 read {seen!r} at /mount2/from-container1; container1 wrote it at /mount1 of the same emptyDir"
    )


@pytest.mark.claim("VOL-02")
def test_emptydir_is_deleted_with_the_pod_and_the_next_pod_starts_empty(
    cluster: Cluster, namespace: str, manifests: Manifests, pod_files: PodFiles
) -> None:
    """An emptyDir MUST be deleted with its pod: the next pod starts with an empty one [000, 003].

    Observed: the file the first pod-volume-1 wrote, found in the kubelet's directory of the
    volume on its node (under the kubelet's --root-dir, read from its command line; without node
    access, the default root, through a probe pod mounting that directory read-only); after the
    pod's deletion, that directory gone from the node; both mounts of the re-created
    pod-volume-1 (a new uid) empty."""
    first = pods.start_pod(manifests, POD_VOLUME_1)
    pod_files.write("pod-volume-1", "/mount1/left-behind", "from the first pod", "container1")
    assert pod_files.read("pod-volume-1", "/mount2/left-behind", "container2") == "from the first pod"
    on_node = volume.EmptyDirOnNode.find(manifests, first, "empty-dir", "left-behind")

    with setup_step("delete pod pod-volume-1"):
        pods.delete_pod(cluster, namespace, "pod-volume-1")
    on_node.wait_removed()
    second = pods.start_pod(manifests, POD_VOLUME_1)

    assert second.metadata.uid != first.metadata.uid
    for container, path in (("container1", "/mount1"), ("container2", "/mount2")):
        left = pod_files.listing("pod-volume-1", path, container)
        assert left == [], f"the re-created pod-volume-1 found {left} in its new emptyDir at {path} ({container})"


@pytest.mark.claim("VOL-03")
def test_emptydir_survives_a_container_restart_in_the_same_pod(
    cluster: Cluster, namespace: str, manifests: Manifests, pod_files: PodFiles
) -> None:
    """An emptyDir MUST survive a container restart inside the same pod [000].

    Observed: the writer container records each start in the emptyDir and exits 1 after its
    first; once restarted (same pod uid, exit code 1 before), it reads the file written before
    the restart and one line per start."""
    created = pods.create_pod(manifests, "claims/volumes/emptydir-restart.yaml")
    pod = pods.wait_restarted(cluster, namespace, "emptydir-restart", "writer", more_than=0)

    status = pods.container_status(pod, "writer")
    last = status.last_state.terminated if status.last_state else None
    assert last is not None and last.exit_code == 1, f"the previous writer container did not end: {status.last_state}"
    assert pod.metadata.uid == created["metadata"]["uid"], "the pod itself was replaced, not restarted in place"
    first = pod_files.read("emptydir-restart", "/cache/first-start", "writer")
    starts = pod_files.read_lines("emptydir-restart", "/cache/starts", "writer", at_least=status.restart_count + 1)
    assert first == "first\n", f"/cache/first-start, written before the restart, reads {first!r} after it"
    assert len(starts) == status.restart_count + 1, (
        f"/cache/starts has {len(starts)} line(s) {starts} after {status.restart_count} restart(s): "
        "the emptyDir did not keep what the earlier container instances wrote"
    )


# --- gitRepo ---------------------------------------------------------------------------------


@pytest.mark.claim("VOL-04")
def test_gitrepo_clones_the_repository_into_the_volume_when_the_pod_starts(
    cluster: Cluster, namespace: str, manifests: Manifests, pod_files: PodFiles
) -> None:
    """A gitRepo volume MUST hold a clone of its repository when the pod starts (deprecated;
    the node needs git) [000, 003].

    Observed: the pod Running with the volume's .git/HEAD and .git/config naming the repository
    (agnhost fake-gitserver on the same node, by pod IP); skipped at once, with the kubelet's
    words, when the node has no git or its git-repo volume plugin is disabled (1.37+: feature
    gate GitRepoVolumeDriver)."""
    (node,) = pick_workers(cluster, 1)
    server = volume.start_git_server(manifests, node)
    pods.create_pod(manifests, "claims/volumes/gitrepo-pod.yaml", values={"GIT_REPO_URL": server.url}, node=node)
    volume.wait_cloned(cluster, namespace, "gitrepo-pod", node)

    head = pod_files.read("gitrepo-pod", "/repo/repo/.git/HEAD")
    config = pod_files.read("gitrepo-pod", "/repo/repo/.git/config") or ""
    assert head and head.startswith("ref: refs/heads/"), f"/repo/repo/.git/HEAD is {head!r}: no clone in the volume"
    assert f"url = {server.url}" in config, (
        f"/repo/repo/.git/config does not name the repository {server.url} as origin: {config!r}"
    )


# --- initContainer ---------------------------------------------------------------------------


def start_order(lines: list[str]) -> list[str]:
    """`init <t>` / `app <t>` lines -> ["init", "app", ...]"""
    return [line.split()[0] for line in lines if line.strip()]


def timestamp(value: datetime | None, what: str) -> datetime:
    assert value is not None, f"no {what}"
    return value


@pytest.mark.claim("VOL-05")
def test_init_container_runs_once_to_completion_before_the_app_and_fills_its_volume(
    cluster: Cluster, namespace: str, manifests: Manifests, pod_files: PodFiles
) -> None:
    """An initContainer MUST run to completion once, before the app containers, and can fill a
    volume for them [000].

    Observed: the init container's exit 0 and finish time before the app's start; the page it
    wrote, read by the app; the start order it and the app log in the volume (init, app), and
    after the app container is restarted (init, app, app: init does not run again)."""
    pod = pods.start_pod(manifests, "claims/volumes/init-container-pod.yaml")

    init = pods.container_status(pod, "init").state.terminated
    app = pods.container_status(pod, "app").state.running
    assert init is not None and init.exit_code == 0, f"init container did not complete: {init}"
    finished = timestamp(init.finished_at, "init finishedAt")
    app_started = timestamp(app.started_at if app else None, "app startedAt")
    assert finished <= app_started, f"app started at {app_started}, before the init container finished at {finished}"
    page = pod_files.read("init-container-pod", "/work/index.html", "app")
    assert page == "filled by the init container\n", f"app sees /work/index.html = {page!r}"
    order = start_order(pod_files.read_lines("init-container-pod", "/work/order", "app", at_least=2))
    assert order == ["init", "app"], f"/work/order shows the start order {order}"

    # a restart of the app container does not run the init container again
    with setup_step("restart container app of init-container-pod (its PID 1 signalled)"):
        pod_files.kill_main_process("init-container-pod", "app")
        pods.wait_restarted(cluster, namespace, "init-container-pod", "app", more_than=0)
    order = start_order(pod_files.read_lines("init-container-pod", "/work/order", "app", at_least=3))
    assert order == ["init", "app", "app"], f"after an app restart /work/order shows the starts {order}"


# --- hostPath --------------------------------------------------------------------------------


def write_through_hostpath(
    cluster: Cluster, namespace: str, manifests: Manifests, pod_files: PodFiles, node_files: NodeFiles, node: str
) -> str:
    """hostpath-writer on `node` writes /host/<namespace> (one file per test), then is deleted;
    returns the text written. The files are the run's on the node (declared first: removed after
    the test, or by a later run's sweep)."""
    nodes = [n.name for n in cluster.nodes]
    node_files.keep_clean(nodes, f"{node_files.run_dir}/hostpath", rmdir_only=True)
    node_files.keep_clean(nodes, f"{node_files.run_dir}/hostpath/{namespace}")
    pods.start_pod(manifests, "claims/volumes/hostpath-writer.yaml", values={"NODE_NAME": node})
    text = f"written on {node} by hostpath-writer in {namespace}"
    pod_files.write("hostpath-writer", f"/host/{namespace}", text)
    with setup_step("delete pod hostpath-writer"):
        pods.delete_pod(cluster, namespace, "hostpath-writer")
    return text


@pytest.mark.claim("VOL-06")
@pytest.mark.pod_security("privileged")  # hostPath volumes
@pytest.mark.needs_node_exec
def test_hostpath_data_outlives_the_pod_and_a_later_pod_on_the_same_node_reads_it(
    cluster: Cluster, namespace: str, manifests: Manifests, pod_files: PodFiles, node_files: NodeFiles
) -> None:
    """hostPath data MUST outlive its pod and be seen by a later pod on the same node [000, 003].

    Observed: the file hostpath-writer wrote (then deleted) read back by hostpath-reader on the
    same node."""
    (node,) = pick_workers(cluster, 1)
    text = write_through_hostpath(cluster, namespace, manifests, pod_files, node_files, node)

    pods.start_pod(manifests, "claims/volumes/hostpath-reader.yaml", values={"READER_NODE_NAME": node})
    seen = pod_files.read("hostpath-reader", f"/host/{namespace}")
    assert seen == text, f"hostpath-reader on {node} (the writer's node) read {seen!r} after the writer pod was deleted"


@pytest.mark.claim("VOL-07")
@pytest.mark.pod_security("privileged")  # hostPath volumes
@pytest.mark.needs_node_exec
def test_hostpath_data_stays_on_its_node_and_a_pod_on_another_node_does_not_see_it(
    cluster: Cluster, namespace: str, manifests: Manifests, pod_files: PodFiles, node_files: NodeFiles
) -> None:
    """hostPath data MUST stay on its node: a pod on another node does not see it [003].

    Observed: hostpath-reader on another worker reads the same hostPath directory (present and
    readable) without the file hostpath-writer wrote."""
    writer_node, other = pick_workers(cluster, 2)
    write_through_hostpath(cluster, namespace, manifests, pod_files, node_files, writer_node)

    pods.start_pod(manifests, "claims/volumes/hostpath-reader.yaml", values={"READER_NODE_NAME": other})
    pod_files.listing("hostpath-reader", "/host")  # the directory is there and readable
    seen = pod_files.read("hostpath-reader", f"/host/{namespace}")
    assert seen is None, f"hostpath-reader on {other} read {seen!r}, written through hostPath on {writer_node}"


@pytest.mark.claim("VOL-08")
@pytest.mark.pod_security("privileged")  # hostPath volumes
@pytest.mark.needs_node_exec
def test_hostpath_types_create_what_is_missing_or_require_the_right_kind_of_file(
    cluster: Cluster, manifests: Manifests, namespace: str, node_files: NodeFiles
) -> None:
    """hostPath types: DirectoryOrCreate / FileOrCreate MUST create what is missing; Directory,
    File, Socket, CharDevice and BlockDevice MUST find their kind of file there, or the pod does
    not start (FailedMount) [000].

    Observed: one pod per type and node path (missing, the right kind, a wrong kind), all on one
    worker: Running, or the kubelet's FailedMount naming the type check; what the node has at
    the ...OrCreate paths afterwards."""
    (node,) = pick_workers(cluster, 1)
    base = f"{node_files.run_dir}/types-{hash_of(namespace, 6)}"  # short: a socket path has <= 107 bytes
    with setup_step(f"make a directory, file, socket and devices under {base} on node {node}"):
        paths = volume.prepare_node_paths(node_files, node, base)
    cases = volume.hostpath_cases(paths, base)
    for case in cases:
        values = {"HOSTPATH_TYPE": case.type, "HOSTPATH_PATH": case.path}
        pods.create_pod(manifests, HOSTPATH_TEMPLATE, values=values, name=case.pod_name, node=node)

    outcomes = volume.hostpath_outcomes(cluster, namespace, cases)
    wrong = [o for o in outcomes if not o.settled or (o.case.starts and o.failed_mount)]
    report = "; ".join(f"{o.case} -> {o.describe()}" for o in wrong)
    assert not wrong, f"on node {node}, hostPath types did not behave as the notes say: {report}"
    for o in outcomes:
        if not o.case.starts:
            assert not o.running and volume.HOSTPATH_TYPE_FAILURE in (o.failed_mount or ""), (
                f"{o.case}: expected the kubelet's type check to refuse it, got {o.describe()}"
            )
    for case in cases:
        if case.creates:
            assert node_files.test(node, case.creates, case.path), (
                f"{case}: the pod runs but {node} has {node_files.kind_of(node, case.path)!r} at {case.path}"
            )
    assert "socket" in paths, f"no UNIX socket on {node} to mount (no perl to make one, no containerd socket)"


@pytest.mark.claim("VOL-09", "VOL-06")
@pytest.mark.pod_security("privileged")  # hostPath volumes
@pytest.mark.needs_node_exec
def test_notes_pod_volume_2_runs_once_node_v_exists_and_its_files_land_on_the_node(
    cluster: Cluster, namespace: str, manifests: Manifests, pod_files: PodFiles, node_files: NodeFiles
) -> None:
    """The notes' pod-volume-2 (hostPath /node-v, type Directory) MUST run once /node-v exists on
    its node, and what it writes there MUST land on the node [003].

    Observed: the pod Running after /node-v was made on every node; the file it writes at
    /mount1 read on its node at /node-v."""
    nodes = [n.name for n in cluster.nodes]
    # the notes' pod has no nodeSelector: /node-v must exist wherever it may land (another test may
    # use it too: removed only where this test made it, and only if empty)
    with setup_step("make /node-v on every node"):
        node_files.make_dir(nodes, "/node-v")
    name = node_files.own_name(namespace)
    node_files.keep_clean(nodes, f"/node-v/{name}")

    pod = pods.start_pod(manifests, POD_VOLUME_2)
    text = f"written in pod-volume-2 of {namespace}"
    pod_files.write("pod-volume-2", f"/mount1/{name}", text)
    on_node = node_files.read(pod.spec.node_name, f"/node-v/{name}")
    found = "no file" if on_node is None else repr(on_node)
    assert on_node == text, (
        f"pod-volume-2 wrote {text!r} at /mount1/{name}; node {pod.spec.node_name} has {found} at /node-v/{name}"
    )


# --- [003] manifests as printed (no indentation) ----------------------------------------------


@dataclass(frozen=True)
class YamlRefusal:
    """PyYAML cannot parse it: the line and problem it reports."""

    line: int
    problem: str


@dataclass(frozen=True)
class Flattened:
    """It parses, but every key lands at the top level: metadata and spec are empty, the name and
    the spec's fields are top-level keys; the API server refuses it with these field errors."""

    kind: str
    top_level: tuple[str, ...]
    refused_fields: frozenset[str]


@dataclass(frozen=True)
class NotAnObject:
    """A field list, not a manifest: a flat mapping of empty values without apiVersion/kind."""

    keys: tuple[str, ...]


POD_REFUSED = frozenset({"metadata.name", "spec.containers"})
AS_WRITTEN = {
    "003-pod-volume-1.yaml": YamlRefusal(13, "expected <block end>, but found '-'"),
    "003-pod-volume-2.yaml": Flattened(
        "Pod", ("name", "containers", "image", "volumeMounts", "hostPath", "path"), POD_REFUSED
    ),
    "003-pod-volume-3.yaml": Flattened(
        "Pod", ("name", "containers", "image", "persistentVolumeClaim", "claimName"), POD_REFUSED
    ),
    "003-pvc-01.yaml": Flattened(
        "PersistentVolumeClaim",
        ("name", "accessModes", "resources", "storage", "storageClassName"),
        frozenset({"metadata.name", "spec.accessModes", "spec.resources[storage]"}),
    ),
    "003-pv-01.yaml": Flattened(
        "PersistentVolume",
        ("name", "capacity", "accessModes", "local", "nodeAffinity", "storageClassName"),
        frozenset({"metadata.name", "spec.accessModes", "spec.capacity"}),
    ),
    "003-remote-volume-fields.yaml": NotAnObject(("nfs", "iscsi", "gitRepo", "repository", "revision", "directory")),
}


@pytest.mark.claim("ERR-07")
@pytest.mark.parametrize("filename", sorted(AS_WRITTEN))
def test_notes_003_manifests_without_indentation_are_not_the_intended_objects(
    cluster: Cluster,
    namespace: str,
    manifests: Manifests,
    tracker: ResourceTracker,
    record_property,
    filename: str,
) -> None:
    """[003] prints its manifests without indentation: as written they are not the objects meant.
    pod-volume-1 is no YAML at all, and the API server refuses it as such; the others parse with
    every key at the top level and empty metadata and spec, which the API server refuses naming
    the missing fields; the remote-volume field list is not a manifest at all: sent to the pods,
    the API server takes it for a Pod (the kind from the URL), drops every field as unknown
    (warning about each, 1.25+) and refuses the empty Pod.

    Observed: PyYAML's error (line, problem), the parsed documents, the API server's answer (the
    text as written, POSTed as YAML to the pods of the test's namespace in a dry run where it is
    not an object of its own)."""
    expected = AS_WRITTEN[filename]
    raw = manifests.load_raw(f"notes-as-written/{filename}")
    pods_path = f"/api/v1/namespaces/{namespace}/pods"
    if isinstance(expected, YamlRefusal):
        with pytest.raises(yaml.YAMLError) as refused:
            raw.documents()
        mark = refused.value.problem_mark
        answer = post_yaml_as_written(cluster, pods_path, raw.text, dry_run=True)
        record_property("observed", f"PyYAML: {refused.value.problem} (line {mark.line + 1}); API server: {answer}")
        assert (mark.line + 1, refused.value.problem) == (expected.line, expected.problem), str(refused.value)
        assert answer.refused_as_bad_yaml, (
            f"{filename} as written, POSTed to {pods_path}: {answer}; expected 400 BadRequest naming the YAML error"
        )
        return

    (doc,) = raw.documents()
    if isinstance(expected, NotAnObject):
        assert "apiVersion" not in doc and "kind" not in doc, f"{filename} parsed to {doc}"
        assert set(expected.keys) <= set(doc) and all(v is None for v in doc.values()), f"{filename} parsed to {doc}"
        answer = post_yaml_as_written(cluster, pods_path, raw.text, dry_run=True)
        record_property(
            "observed", f"parses to a flat mapping of {len(doc)} empty fields, no apiVersion/kind; API server: {answer}"
        )
        # the server takes the kind from the URL (a Pod), drops every field as unknown and refuses the empty Pod
        fields = {c.field for c in answer.causes}
        assert (answer.status, answer.reason) == (422, "Invalid") and fields >= POD_REFUSED, (
            f"{filename} as written, POSTed to {pods_path}: {answer}; expected 422 Invalid, an empty Pod "
            f"(causes {sorted(POD_REFUSED)})"
        )
        if cluster.server_version >= (1, 25):  # server-side field validation warns by default
            unwarned = [key for key in doc if f'unknown field "{key}"' not in answer.warnings]
            assert not unwarned, f"{filename}: no warning about the unknown fields {unwarned}: {answer}"
        return

    assert doc["kind"] == expected.kind and doc["metadata"] is None and doc["spec"] is None, (
        f"{filename}: expected kind {expected.kind} with empty metadata and spec, parsed {doc}"
    )
    missing = [k for k in expected.top_level if k not in doc]
    assert not missing, f"{filename}: expected {missing} at the top level, parsed {doc}"

    resource = cluster.dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
    answer = answer_to(lambda: resource.create(body=doc, namespace=namespace if resource.namespaced else None))
    if answer.accepted:
        tracker.register(cluster, answer.body, namespaced=resource.namespaced)
        pytest.fail(
            f"{filename}: the API server accepted the unindented manifest as {answer.body['metadata']['name']!r}"
        )
    fields = {c.field for c in answer.causes}
    record_property("observed", f"parses with empty metadata/spec, keys at top level; API server: {answer}")
    assert (answer.status, answer.reason) == (422, "Invalid"), f"{filename}: {answer}"
    assert expected.refused_fields <= fields, (
        f"{filename}: refused without naming {sorted(expected.refused_fields - fields)}: {answer.message}"
    )
