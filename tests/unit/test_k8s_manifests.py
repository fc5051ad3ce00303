"""deploy/k8s: the base and the example overlay, rendered here as ``kubectl apply -k`` would (kustomize is not
needed: ``render`` below applies the few kustomization fields these files use, and refuses any other), validated
against the Kubernetes schemas (kubernetes-validate, strict: an unknown field is an error), and held to what the
services need: one Deployment per process role that the code has, probes on the service's port, non-root read-only
containers, requests and limits above the benchmarked memory, an autoscaler and a disruption budget for each web
role, secrets only by reference, and network policies that let traffic reach the pages and the web roles only."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from services.registry import ROOT, SERVICES
from shared.settings import Settings

K8S = ROOT / "deploy" / "k8s"
BASE, OVERLAY = K8S / "base", K8S / "overlays" / "example"
# The oldest Kubernetes the manifests are for (the preStop sleep action, CronJob time zones).
KUBERNETES_VERSION = "1.30.0"
SECRETS = {"rcc-database": {"url"}, "rcc-rabbitmq": {"urls"}, "rcc-smtp": {"url"}}
ROLES = ("web", "relay", "consumers", "scheduler")

Obj = dict[str, Any]


def load(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def merge(target: Any, patch: Any) -> Any:
    """Strategic merge as these patches use it: maps merge, lists of named items merge by name, other lists and
    scalars are replaced."""
    if isinstance(target, dict) and isinstance(patch, dict):
        merged = dict(target)
        for key, value in patch.items():
            merged[key] = merge(target[key], value) if key in target else value
        return merged
    if isinstance(target, list) and isinstance(patch, list) and all(isinstance(i, dict) and "name" in i for i in patch):
        merged_list = list(target)
        for item in patch:
            at = next((n for n, old in enumerate(merged_list) if old.get("name") == item["name"]), None)
            if at is None:
                merged_list.append(item)
            else:
                merged_list[at] = merge(merged_list[at], item)
        return merged_list
    return copy.deepcopy(patch)


def pod_specs(obj: Obj) -> Iterator[Obj]:
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]
    elif obj["kind"] in ("Deployment", "Job"):
        yield spec["template"]["spec"]


def containers(obj: Obj) -> Iterator[Obj]:
    for pod in pod_specs(obj):
        yield from pod.get("initContainers", [])
        yield from pod["containers"]


def render(directory: Path) -> list[Obj]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    known = {"apiVersion", "kind", "namespace", "resources", "images", "replicas", "patches"}
    assert set(kustomization) <= known, f"render() does not apply {set(kustomization) - known}"
    objects: list[Obj] = []
    for resource in kustomization["resources"]:
        path = directory / resource
        objects.extend(render(path) if path.is_dir() else load(path))
    for entry in kustomization.get("patches", []):
        [patch] = load(directory / entry["path"])
        [at] = [
            n
            for n, o in enumerate(objects)
            if (o["kind"], o["metadata"]["name"]) == (patch["kind"], patch["metadata"]["name"])
        ]
        objects[at] = merge(objects[at], patch)
    for image in kustomization.get("images", []):
        for obj in objects:
            for container in containers(obj):
                if container["image"].split(":")[0] == image["name"]:
                    container["image"] = f"{image['newName']}:{image['newTag']}"
    for replicas in kustomization.get("replicas", []):
        [deployment] = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == replicas["name"]]
        deployment["spec"]["replicas"] = replicas["count"]
    if "namespace" in kustomization:
        for obj in objects:
            if obj["kind"] != "Namespace":
                obj["metadata"]["namespace"] = kustomization["namespace"]
    return objects


@pytest.fixture(scope="module", params=[BASE, OVERLAY], ids=["base", "overlay"])
def rendered(request: pytest.FixtureRequest) -> list[Obj]:
    return render(request.param)


def of_kind(objects: list[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    matched = all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        matched = matched and labels.get(expression["key"]) in expression["values"]
    return matched


def roles_of(service: str) -> set[str]:
    """The roles a service's code has: every service relays its outbox; consumers if it has a queue; a scheduler if
    its app runs periodic jobs."""
    app = (ROOT / "services" / service / "app.py").read_text()
    return {
        "web",
        "relay",
        *(["consumers"] if SERVICES[service].queue() is not None else []),
        *(["scheduler"] if "runtime.every(" in app else []),
    }


def test_every_object_is_valid_against_the_kubernetes_schemas(rendered: list[Obj]) -> None:
    assert rendered
    for obj in rendered:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_a_schema_error_is_caught() -> None:
    [deployment, *_] = load(BASE / "checkin.yaml")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_one_deployment_per_role_the_code_has(rendered: list[Obj]) -> None:
    deployments = of_kind(rendered, "Deployment")
    wanted = {f"{service}-{role}" for service in SERVICES for role in roles_of(service)} | {"pages-web"}
    assert set(deployments) == wanted
    for name, deployment in deployments.items():
        service, role = name.rsplit("-", 1)
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        serve = ["rcc", "serve", service] + ([] if service == "pages" else ["--role", role])
        assert container["args"] == serve
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == service and labels["rcc.example.org/role"] == role
        port = Settings().port_of(service)
        assert container["ports"] == [{"name": "http", "containerPort": port}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(port)


def peak_rss_mb() -> float:
    """The largest peak RSS of any service process in bench/RESULTS.md (all roles in one process)."""
    text = (ROOT / "bench" / "RESULTS.md").read_text()
    figures = [float(mb) for mb in re.findall(r"\| peak RSS \w+ \| ([\d.]+) MB \|", text)]
    assert figures
    return max(figures)


def mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * (1024 if unit == "Gi" else 1) * 1.048576


def test_every_container_runs_non_root_read_only_and_sized(rendered: list[Obj]) -> None:
    rss = peak_rss_mb()
    workloads = [o for o in rendered if o["kind"] in ("Deployment", "Job", "CronJob")]
    assert {o["kind"] for o in workloads} == {"Deployment", "Job", "CronJob"}
    for obj in workloads:
        for pod in pod_specs(obj):
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["runAsUser"] != 0
            assert pod["automountServiceAccountToken"] is False
            assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
        for container in containers(obj):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
            resources = container["resources"]
            assert set(resources) == {"requests", "limits"} and set(resources["limits"]) == {"cpu", "memory"}
            assert mebibytes(resources["limits"]["memory"]) >= 2 * rss, obj["metadata"]["name"]
            if obj["kind"] == "Deployment" and obj["metadata"]["name"] != "pages-web":
                assert mebibytes(resources["requests"]["memory"]) >= rss, obj["metadata"]["name"]


def test_secrets_are_referenced_never_committed(rendered: list[Obj]) -> None:
    assert not of_kind(rendered, "Secret")
    for obj in rendered:
        for container in containers(obj):
            for env in container.get("env", []):
                if "valueFrom" in env:
                    ref = env["valueFrom"]["secretKeyRef"]
                    assert ref["key"] in SECRETS[ref["name"]]
                else:
                    assert not any(word in env["name"] for word in ("URL", "PASSWORD", "TOKEN")), env


def test_web_roles_autoscale_and_every_role_has_a_disruption_budget(rendered: list[Obj]) -> None:
    deployments, budgets = of_kind(rendered, "Deployment"), of_kind(rendered, "PodDisruptionBudget")
    autoscalers = of_kind(rendered, "HorizontalPodAutoscaler")
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert [b for b in budgets.values() if selects(b["spec"]["selector"], labels)] == [budgets[name]]
        if name.endswith("-web"):
            assert "replicas" not in deployment["spec"], "the autoscaler owns a web role's replica count"
            assert autoscalers[name]["spec"]["scaleTargetRef"]["name"] == name
            assert autoscalers[name]["spec"]["minReplicas"] >= 2
        else:
            assert deployment["spec"]["replicas"] >= 2
    assert set(autoscalers) == {name for name in deployments if name.endswith("-web")}


def test_services_front_the_web_replicas_the_pages_forward_to(rendered: list[Obj]) -> None:
    services, deployments = of_kind(rendered, "Service"), of_kind(rendered, "Deployment")
    config = of_kind(rendered, "ConfigMap")["rcc-config"]["data"]
    assert set(services) == {*SERVICES, "pages"}
    for name, service in services.items():
        selected = [
            d
            for d in deployments
            if selects(
                {"matchLabels": service["spec"]["selector"]}, deployments[d]["spec"]["template"]["metadata"]["labels"]
            )
        ]
        assert selected == [f"{name}-web"]
        [port] = service["spec"]["ports"]
        assert port["port"] == Settings().port_of(name)
        if name != "pages":
            assert config[f"RCC_{name.upper()}_URL"] == f"http://{name}:{port['port']}"


def ingress_rules(rendered: list[Obj], labels: dict[str, str]) -> list[Obj]:
    policies = [p for p in of_kind(rendered, "NetworkPolicy").values() if selects(p["spec"]["podSelector"], labels)]
    assert any(p["spec"]["policyTypes"] == ["Ingress", "Egress"] and not p["spec"].get("ingress") for p in policies)
    return [rule for p in policies for rule in p["spec"].get("ingress", [])]


def test_only_the_pages_and_the_web_roles_take_traffic(rendered: list[Obj]) -> None:
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    pages = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "rcc", "app.kubernetes.io/component": "pages"}}}
    for name, deployment in of_kind(rendered, "Deployment").items():
        rules = ingress_rules(rendered, deployment["spec"]["template"]["metadata"]["labels"])
        sources = [peer for rule in rules for peer in rule.get("from", [{"anyone": True}])]
        others = [peer for peer in sources if peer != monitoring]
        if name == "pages-web":
            assert others and pages not in others
        elif name.endswith("-web"):
            assert others == [pages], name
        else:
            assert others == [], name


def test_only_the_services_reach_postgresql_and_only_relays_and_consumers_rabbitmq(rendered: list[Obj]) -> None:
    policies = of_kind(rendered, "NetworkPolicy")
    database = {"cnpg.io/cluster": "rcc-db"}
    broker = {"app.kubernetes.io/name": "rcc-rabbitmq"}

    def reach(labels: dict[str, str], target: dict[str, str]) -> bool:
        return any(
            selects(p["spec"]["podSelector"], labels)
            and any(
                selects(peer.get("podSelector", {"matchLabels": {"x": "y"}}), target)
                for rule in p["spec"].get("egress", [])
                for peer in rule.get("to", [])
            )
            for p in policies.values()
        )

    workloads = [o for o in rendered if o["kind"] in ("Deployment", "Job", "CronJob")]
    for obj in workloads:
        labels = obj["spec"].get("jobTemplate", obj)["spec"]["template"]["metadata"]["labels"]
        component, role = labels["app.kubernetes.io/component"], labels["rcc.example.org/role"]
        assert reach(labels, database) is (component != "pages"), obj["metadata"]["name"]
        assert reach(labels, broker) is (role in ("relay", "consumers", "migrate")), obj["metadata"]["name"]
    [postgresql_clients] = [
        r
        for r in policies["rcc-postgresql-clients"]["spec"]["ingress"]
        if r.get("ports") == [{"protocol": "TCP", "port": 5432}]
    ]
    assert postgresql_clients["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "rcc", "rcc.example.org/tier": "service"}}}
    ]


def test_the_overlay_sets_namespace_image_and_sizes() -> None:
    objects = render(OVERLAY)
    assert all(o["metadata"].get("namespace") == "rcc" for o in objects if o["kind"] != "Namespace")
    images = {c["image"] for o in objects for c in containers(o)}
    assert images == {"registry.example.org/rcc:2026.12.0"}
    assert of_kind(objects, "Deployment")["audit-consumers"]["spec"]["replicas"] == 3
    assert of_kind(objects, "HorizontalPodAutoscaler")["checkin-web"]["spec"]["minReplicas"] == 3
    pages_policy = of_kind(objects, "NetworkPolicy")["rcc-pages"]["spec"]
    assert pages_policy["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    ]
    assert pages_policy["egress"], "the patch keeps the pages' egress"


# docker-compose.yml's scale example


def test_compose_scale_runs_two_replicas_of_each_web_role_behind_the_pages() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    scale = {name: service for name, service in compose.items() if "scale" in service.get("profiles", [])}
    assert set(scale) == {f"{name}-web" for name in SERVICES} | {"pages-scale"}
    for name in SERVICES:
        web = scale[f"{name}-web"]
        assert web["command"] == ["rcc", "serve", name, "--role", "web"]
        assert web["deploy"]["replicas"] == 2
        assert "ports" not in web, "two replicas cannot publish one host port"
        port = Settings().port_of(name)
        assert scale["pages-scale"]["environment"][f"RCC_{name.upper()}_URL"] == f"http://{name}-web:{port}"
        assert scale["pages-scale"]["depends_on"][f"{name}-web"] == {"condition": "service_healthy"}
    # The containers of the plain profile go on relaying, consuming and scheduling for the web replicas.
    for name in SERVICES:
        assert compose[name]["command"] == ["rcc", "serve", name]
