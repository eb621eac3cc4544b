"""Ingress verbs, the package's face: the names the suites and tests use, each defined in the module of its one job.

installs (the controllers this suite installs), classes (which IngressClass is tested), tls, documents,
traffic (HTTP through the controller), backends, api (kubectl and discovery), controller (the Controller
jig), installer (installing one), under_test (the module's controller, chosen once).
"""

from clusterproof.jigs.ingress.api import external_ip_column, patch_service_spec, served_versions, serves_resource
from clusterproof.jigs.ingress.backends import path_services, service_backends, service_for, service_state
from clusterproof.jigs.ingress.classes import (
    DEFAULT_CLASS_ANNOTATION,
    ClassInfo,
    IngressClassNotFound,
    Plan,
    check_class,
    class_infos,
    controller_claims,
    default_classes,
    ingress_classes,
    plan,
)
from clusterproof.jigs.ingress.controller import (
    Controller,
    controller_words,
    find_controller,
    selector_labels,
    version_of,
)
from clusterproof.jigs.ingress.documents import address_within, set_class, set_host
from clusterproof.jigs.ingress.installer import install, missing_images, read_job, rendered
from clusterproof.jigs.ingress.installs import (
    ADMISSION_JOBS,
    ADMISSION_SERVICE,
    CONTROLLER_SERVICE,
    INGRESS_NGINX,
    TRAEFIK,
    Install,
    install_for,
)
from clusterproof.jigs.ingress.tls import (
    b64,
    certificate_subject,
    der_of,
    https_get_sni,
    presented_certificate,
    require_cryptography,
    secret_certificate_state,
    secret_names_another_host,
    self_signed_certificate,
)
from clusterproof.jigs.ingress.traffic import answers_with, get, wait_answer
from clusterproof.jigs.ingress.under_test import UnderTest, controller_under_test

__all__ = [
    "ADMISSION_JOBS",
    "ADMISSION_SERVICE",
    "CONTROLLER_SERVICE",
    "ClassInfo",
    "Controller",
    "DEFAULT_CLASS_ANNOTATION",
    "INGRESS_NGINX",
    "IngressClassNotFound",
    "Install",
    "Plan",
    "TRAEFIK",
    "UnderTest",
    "address_within",
    "answers_with",
    "b64",
    "certificate_subject",
    "check_class",
    "class_infos",
    "controller_claims",
    "controller_under_test",
    "controller_words",
    "default_classes",
    "der_of",
    "external_ip_column",
    "find_controller",
    "get",
    "https_get_sni",
    "ingress_classes",
    "install",
    "install_for",
    "missing_images",
    "patch_service_spec",
    "path_services",
    "plan",
    "presented_certificate",
    "read_job",
    "rendered",
    "require_cryptography",
    "secret_certificate_state",
    "secret_names_another_host",
    "selector_labels",
    "self_signed_certificate",
    "served_versions",
    "serves_resource",
    "service_backends",
    "service_for",
    "service_state",
    "set_class",
    "set_host",
    "version_of",
    "wait_answer",
]
