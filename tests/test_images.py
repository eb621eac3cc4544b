"""ImageCatalogue and --image-map parsing."""

import pytest

from clusterproof.errors import ImageMapError, ImageNotFound
from clusterproof.images import ImageCatalogue, parse_image_map


def test_packaged_catalogue_has_the_agreed_refs():
    cat = ImageCatalogue.load()
    assert cat.ref("agnhost") == "registry.k8s.io/e2e-test-images/agnhost:2.66.1"
    assert cat.ref("busybox") == "docker.io/library/busybox:1.29"
    assert cat.ref("pause") == "registry.k8s.io/pause:3.10.2"
    assert cat.ref("fluentd-elasticsearch") == "quay.io/fluentd_elasticsearch/fluentd:v2.5.2"
    assert cat.ref("fluentd-elasticsearch", offline=True) == cat.ref("agnhost")
    assert cat.ref("busybox", offline=True) == cat.ref("busybox")


def test_unknown_name_lists_known_names():
    with pytest.raises(ImageNotFound, match=r"unknown image 'nginx'.*known: agnhost"):
        ImageCatalogue.load().ref("nginx")


def test_image_map_lines_override_and_add(tmp_path):
    path = tmp_path / "map.txt"
    path.write_text("# mirror\nagnhost=mirror.local/agnhost:2.21\n\nnginx = mirror.local/nginx:1.19  # new\n")
    cat = ImageCatalogue.load(image_map=path)
    assert cat.ref("agnhost") == "mirror.local/agnhost:2.21"
    assert cat.ref("nginx") == "mirror.local/nginx:1.19"
    assert cat.ref("busybox") == "docker.io/library/busybox:1.29"


def test_image_map_yaml_override_replaces_offline_alternative(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text("fluentd-elasticsearch: mirror.local/fluentd:v2.5.2\nmirror-only:\n  ref: mirror.local/extra:1\n")
    cat = ImageCatalogue.load(image_map=path)
    assert cat.ref("fluentd-elasticsearch", offline=True) == "mirror.local/fluentd:v2.5.2"
    assert cat.ref("mirror-only") == "mirror.local/extra:1"


def test_image_map_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "map.txt"
    path.write_text("agnhost=a\njust-a-name\n")
    with pytest.raises(ImageMapError, match=r"map.txt:2: expected `name=ref`"):
        parse_image_map(path)


def test_image_map_yaml_entry_without_ref(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text("agnhost: {offline: x}\n")
    with pytest.raises(ImageMapError, match="needs a reference"):
        parse_image_map(path)
