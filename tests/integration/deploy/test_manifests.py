"""The deployment files, checked without Docker or a cluster: they parse, every command they run is a
real ``grove-export`` command, every GROVE_* variable is a real setting, images and NATS users are
consistent, the NATS configs equal the generator's output and pass ``nats-server -t``."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.cli import SERVICES, parser
from services.devtools.stack.natsserver import nats_server_binary
from shared.bus.permissions import ADMIN, USERS, password_env, render_deploy_files
from shared.runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
USER_NAMES = {u.name for u in USERS}
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*)|:\?[^}]*)?\}")


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def k8s_docs() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in k8s_docs() if d["kind"] == kind]


def assert_cli(argv: list[str]) -> None:
    """``argv`` (after the ``grove-export`` entrypoint) parses as a real command."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # argparse exits on an unknown command or choice
        raise AssertionError(f"`grove-export {' '.join(argv)}` is not a grove-export command") from e
    if args.command == "run":
        assert args.service in SERVICES


def setting_exists(var: str) -> bool:
    """``GROVE_S3__ENDPOINT_URL`` → Settings.s3.endpoint_url exists."""
    path = var.removeprefix("GROVE_").lower().split("__")
    model: Any = Settings
    for i, name in enumerate(path):
        fields = model.model_fields
        if name not in fields:
            return False
        if i < len(path) - 1:
            model = fields[name].annotation
    return True


def resolve(value: str) -> str:
    """Compose interpolation: ``${X:-d}`` → d; a required ``${X:?why}`` → a stand-in value (compose
    itself refuses to start while X is unset)."""
    def one(m: re.Match[str]) -> str:
        if m.group(0).startswith(f"${{{m.group(1)}:?"):
            return f"required-{m.group(1)}-value-that-is-long-enough"
        return m.group(2) or ""

    return INTERPOLATION.sub(one, value).replace("$$", "$")


def build_settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key in [k for k in os.environ if k.startswith("GROVE_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("GROVE_"):
            monkeypatch.setenv(key, value)
    return Settings()


# -- the image ---------------------------------------------------------------------------------------

def test_the_dockerfile_runs_grove_export_as_a_non_root_user() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    froms = [ln.split()[1] for ln in lines if ln.upper().startswith("FROM ")]
    assert froms and all(f == "python:3.11-slim" for f in froms)
    final = lines[max(i for i, ln in enumerate(lines) if ln.upper().startswith("FROM ")):]
    users = [ln.split(None, 1)[1] for ln in final if ln.upper().startswith("USER ")]
    assert users, "the final stage sets no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and int(user) >= 1000
    entrypoint = [json.loads(ln.split(None, 1)[1]) for ln in final if ln.upper().startswith("ENTRYPOINT ")]
    cmd = [json.loads(ln.split(None, 1)[1]) for ln in final if ln.upper().startswith("CMD ")]
    assert entrypoint[-1] == ["grove-export"] and cmd[-1] == ["run", "gateway"]
    assert_cli(cmd[-1])
    assert any("pip install" in ln for ln in final)
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text()
    assert "!shared/**" in ignore and "!services/**" in ignore


# -- compose -----------------------------------------------------------------------------------------

GROVE_SERVICES = set(SERVICES)  # the step table's services
NO_STORE = {"notifier"}  # never touches the object store, so gets no S3 credentials


def test_compose_parses_and_has_the_whole_stack() -> None:
    c = compose()
    services = c["services"]
    assert {"nats-1", "nats-2", "nats-3", "minio", "minio-init", "mailpit"} <= set(services)
    assert GROVE_SERVICES <= set(services)
    assert services["assembler"]["deploy"]["replicas"] == 2
    assert services["minio-init"]["restart"] == "no"
    deps = services["catalog"]["depends_on"]
    assert deps["minio-init"]["condition"] == "service_completed_successfully"
    assert all(deps[f"nats-{i}"]["condition"] == "service_healthy" for i in (1, 2, 3))


def test_every_compose_command_is_a_real_grove_export_command(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    images = set()
    for name, svc in services.items():
        if "build" not in svc:
            continue
        images.add(svc["image"])
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / svc["build"]["context"] / svc["build"]["dockerfile"]).resolve().exists()
        assert_cli(svc["command"])
        if name in GROVE_SERVICES:
            assert svc["command"] == ["run", name]
    assert len(images) == 1, f"one image for all services, not {images}"
    assert set(SERVICES) <= {s["command"][1] for s in services.values() if "build" in s and s["command"][0] == "run"}


def test_compose_env_is_real_settings_with_s3_r3_and_a_nats_user_per_service(
        monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    for name in GROVE_SERVICES:
        env = services[name]["environment"]
        unknown = [k for k in env if k.startswith("GROVE_") and not setting_exists(k)]
        assert not unknown, f"{name}: not settings: {unknown}"
        s = build_settings({k: resolve(str(v)) for k, v in env.items()}, monkeypatch)
        assert s.store == "s3" and s.stream_replicas == 3
        assert s.s3.endpoint_url == "http://minio:9000" and s.s3.public_endpoint_url
        assert bool(s.s3.access_key_id and s.s3.secret_access_key) == (name not in NO_STORE), name
        assert (s.jwt_secret is not None, s.link_secret is not None) == ((name == "gateway"),) * 2, name
        previous = {k: env.get(k) for k in ("GROVE_JWT_SECRET_PREVIOUS", "GROVE_LINK_SECRET_PREVIOUS")}
        assert all(v is not None for v in previous.values()) == (name == "gateway"), name  # the gateway's only
        assert s.nats_url.split(",") == [f"nats://nats-{i}:4222" for i in (1, 2, 3)]
        assert s.nats_user == name, "each service connects as its own NATS user"
        assert str(env["GROVE_NATS_PASSWORD"]).startswith(f"${{{password_env(name)}")
        assert (s.mail.backend, s.mail.smtp_host, s.mail.smtp_port) == ("smtp", "mailpit", 1025)
        assert s.buckets.exports in services["minio-init"]["command"][0]
        assert s.buckets.images in services["minio-init"]["command"][0]
    assert float(services["janitor"]["environment"]["GROVE_JANITOR_INTERVAL_S"]) > 0
    assert services["gateway"]["environment"].get("GROVE_READ_MODEL_DB")


def test_compose_requires_every_secret_and_publishes_on_loopback_only() -> None:
    text = (DEPLOY / "docker-compose.yml").read_text()
    for var in ("GROVE_JWT_SECRET", "GROVE_LINK_SECRET", "MINIO_ROOT_PASSWORD", "GROVE_S3_SECRET_ACCESS_KEY",
                *(password_env(n) for n in (ADMIN, *USER_NAMES))):
        uses = re.findall(rf"\$\{{{var}\b(:[?-])?", text)
        assert uses and all(u == ":?" for u in uses), f"{var} must be required (${{{var}:?...}}), not defaulted"
    for var in ("GROVE_JWT_SECRET_PREVIOUS", "GROVE_LINK_SECRET_PREVIOUS"):  # only while rotating: optional
        assert re.findall(rf"\$\{{{var}\b([^}}]*)\}}", text) == [":-"], f"{var} must be optional and empty (${{{var}:-}})"
    for name, svc in compose()["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
        env = svc.get("environment", {})
        assert "MINIO_ROOT_PASSWORD" not in str(env) or name in ("minio", "minio-init"), name


def test_every_grove_container_in_compose_is_locked_down_as_in_kubernetes() -> None:
    """Kubernetes runs each container with a read-only root filesystem (a writable /tmp only), no
    capabilities, no privilege escalation and CPU and memory limits; compose ran the same image with
    none of these: a writable image, every default capability, and one runaway export free to take the
    host's memory from NATS and MinIO beside it."""
    for name, svc in compose()["services"].items():
        if "build" not in svc:  # not the grove-export image
            continue
        assert svc.get("read_only") is True, f"{name}: a writable root filesystem"
        writable = [t.split(":")[0] for t in svc.get("tmpfs", [])] + [v.split(":")[1] for v in svc.get("volumes", [])]
        assert "/tmp" in writable, f"{name}: no writable /tmp"
        assert svc.get("cap_drop") == ["ALL"], f"{name}: keeps the default capabilities"
        assert "no-new-privileges:true" in svc.get("security_opt", []), f"{name}: may escalate privileges"
        assert svc.get("mem_limit") and svc.get("cpus"), f"{name}: no memory or CPU limit"


def test_every_docker_compose_command_in_the_docs_names_the_compose_file() -> None:
    """The compose file is in deploy/: a ``docker compose`` without ``-f deploy/docker-compose.yml``,
    run from the repository root as the docs say, finds no project."""
    for path in (ROOT / "README.md", DEPLOY / "README.md", DEPLOY / "docker-compose.yml", ROOT / "Makefile"):
        text = re.sub(r"\s*\n\s*#?\s*", " ", path.read_text())  # commands wrapped over comment lines too
        for args in re.findall(r"docker compose (\S+ \S+)", text):
            assert args == "-f deploy/docker-compose.yml", f"{path.relative_to(ROOT)}: docker compose {args} …"


def test_the_compose_header_names_the_setup_job_every_service_waits_for() -> None:
    services = compose()["services"]
    header = (DEPLOY / "docker-compose.yml").read_text().split("\nname:")[0]
    setup = [name for name, svc in services.items() if (svc.get("command") or [None])[0] == "setup"]
    assert setup == ["setup"] and "`setup` service" in header, "the header must say who creates the stream"
    for name in GROVE_SERVICES:
        assert services[name]["depends_on"]["setup"]["condition"] == "service_completed_successfully", name


def test_every_required_compose_variable_is_in_env_example_and_the_readme_secrets_list() -> None:
    """A ``${VAR:?…}`` of the compose file that .env.example or the README's list leaves out is a
    stack that will not start for whoever follows them."""
    text = (DEPLOY / "docker-compose.yml").read_text()
    body = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))  # comments say `${VAR:?}`
    required = set(re.findall(r"\$\{(\w+):\?", body))
    example = (DEPLOY / ".env.example").read_text()
    listed = {ln.split("=", 1)[0] for ln in example.splitlines() if ln.strip() and not ln.startswith("#")}
    assert required == listed, f"deploy/.env.example: missing {required - listed}, not required {listed - required}"
    readme = (ROOT / "README.md").read_text()
    secrets = readme[readme.index("**Secrets refuse to be defaulted.**"):]
    secrets = secrets[:secrets.index("\n\n")]
    users = re.search(r"`NATS_PASSWORD_<USER>` for ([^)]*)\)", secrets)
    assert users, "the README's secrets list does not name NATS_PASSWORD_<USER>"
    assert {password_env(u.strip()) for u in users.group(1).split(",")} == {
        v for v in required if v.startswith("NATS_PASSWORD_")}
    missing = [v for v in sorted(required) if not v.startswith("NATS_PASSWORD_") and f"`{v}`" not in secrets]
    assert not missing, f"README's list of compose secrets omits {missing}"
    content = {n for n, svc in compose()["services"].items() if "GROVE_CONTENT_DSN" in svc.get("environment", {})}
    assert content == {"catalog", "seed"}, "the README says only the catalog and seed get the content DSN"
    for name, where in ((".env.example", example), ("docker-compose.yml", text)):  # files they point to exist
        for path in re.findall(r"\b(?:services|shared)/[\w/]+\.py\b", where):
            assert (ROOT / path).is_file(), f"deploy/{name} points to {path}, which does not exist"


def test_compose_nats_nodes_mount_the_generated_configs_and_get_every_password() -> None:
    services = compose()["services"]
    for i in (1, 2, 3):
        node = services[f"nats-{i}"]
        assert node["image"].startswith("nats:2.11")
        assert node["command"] == ["--config", "/etc/nats/nats.conf"]
        mount = next(v for v in node["volumes"] if v.endswith(":/etc/nats/nats.conf:ro"))
        conf = (DEPLOY / mount.split(":")[0]).read_text()
        wanted = set(re.findall(r"\$(NATS_PASSWORD_\w+)", conf))
        assert wanted == {password_env(n) for n in (ADMIN, *USER_NAMES)}
        assert wanted <= set(node["environment"])
        assert f'server_name: "nats-{i}"' in conf
        for j in (1, 2, 3):
            assert f"nats://nats-{j}:6222" in conf


def test_the_nats_configs_equal_the_generator_output() -> None:
    for name, text in render_deploy_files().items():
        path = DEPLOY / "nats" / name
        assert path.exists() and path.read_text() == text, (
            f"deploy/nats/{name} is stale: run `python -m shared.bus.permissions deploy/nats`")


@pytest.mark.parametrize("name", ["nats-1.conf", "nats-2.conf", "nats-3.conf", "auth.conf"])
def test_nats_server_accepts_the_configs(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {password_env(n): f"pw-{n}" for n in (ADMIN, *USER_NAMES)}
    out = subprocess.run([nats_server_binary(), "-t", "-c", str(DEPLOY / "nats" / name)], env=env,
                         capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    missing = subprocess.run([nats_server_binary(), "-t", "-c", str(DEPLOY / "nats" / name)],
                             env={k: v for k, v in env.items() if k != password_env("janitor")},
                             capture_output=True, text=True, timeout=30, check=False)
    assert missing.returncode != 0 and "NATS_PASSWORD_JANITOR" in missing.stdout + missing.stderr


# -- kubernetes --------------------------------------------------------------------------------------

def test_k8s_manifests_parse_and_have_every_piece() -> None:
    docs = k8s_docs()
    kinds = [d["kind"] for _, d in docs]
    for kind in ("Namespace", "ConfigMap", "Secret", "CronJob", "Service"):
        assert kind in kinds, kind
    deployments = {d["metadata"]["name"]: d for d in of_kind("Deployment")}
    assert set(deployments) == {f"grove-{s}" for s in ("gateway", "catalog", "assembler", "canceller", "finalizer",
                                                        "notifier")}
    assert deployments["grove-assembler"]["spec"]["replicas"] == 2
    namespaces = {d["metadata"].get("namespace") for _, d in docs if d["kind"] != "Namespace"}
    assert namespaces == {of_kind("Namespace")[0]["metadata"]["name"]}
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _pods() -> list[tuple[str, dict[str, Any]]]:
    out = [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in of_kind("Deployment")]
    out += [(d["metadata"]["name"], d["spec"]["jobTemplate"]["spec"]["template"]["spec"]) for d in of_kind("CronJob")]
    return out


def test_k8s_commands_images_env_and_secrets_are_consistent(monkeypatch: pytest.MonkeyPatch) -> None:
    config = of_kind("ConfigMap")[0]["data"]
    secret_values = of_kind("Secret")[0]["stringData"]
    secret_keys = set(secret_values)
    assert {password_env(n) for n in (ADMIN, *USER_NAMES)} <= secret_keys
    unknown = [k for k in config if not setting_exists(k)] + [
        k for k in secret_keys if k.startswith("GROVE_") and not setting_exists(k)]
    assert not unknown, f"not settings: {unknown}"
    images = set()
    for name, pod in _pods():
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] >= 1000
        (container,) = pod["containers"]
        images.add(container["image"])
        assert "command" not in container, "keep the image's entrypoint (grove-export)"
        assert_cli(container["args"])
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["envFrom"] == [{"configMapRef": {"name": "grove-export"}}]
        env = {e["name"]: e for e in container["env"]}
        service = container["args"][1] if container["args"][0] == "run" else "janitor"
        assert env["GROVE_NATS_USER"]["value"] == service and service in USER_NAMES
        keyrefs = [e["valueFrom"]["secretKeyRef"] for e in env.values() if "valueFrom" in e]
        refs = {r["key"] for r in keyrefs if not r.get("optional")}
        assert refs <= secret_keys, f"{name} references missing secret keys {refs - secret_keys}"
        optional = {r["key"] for r in keyrefs if r.get("optional")}  # kept only while rotating; a relay's login
        assert optional == {"gateway": {"GROVE_JWT_SECRET_PREVIOUS", "GROVE_LINK_SECRET_PREVIOUS"},
                            "notifier": {"GROVE_MAIL__SMTP_USERNAME", "GROVE_MAIL__SMTP_PASSWORD"}}.get(service, set()), name
        assert all(env[k]["valueFrom"]["secretKeyRef"]["key"] == k and setting_exists(k) for k in optional), name
        assert env["GROVE_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == password_env(service)
        assert not {k for k in refs if k.startswith("NATS_PASSWORD_")} - {password_env(service)}, (
            f"{name} can read another service's NATS password")
        values = {**config, **{k: secret_values[k] for k in refs if k.startswith("GROVE_")},
                  **{k: e["value"] for k, e in env.items() if "value" in e}}
        s = build_settings(values, monkeypatch)
        assert s.store == "s3" and s.stream_replicas == 3 and len(s.nats_url.split(",")) == 3
    assert len(images) == 1, images


def test_k8s_deployments_have_probes_that_point_at_real_endpoints() -> None:
    metrics_port = int(of_kind("ConfigMap")[0]["data"]["GROVE_METRICS_PORT"])
    for d in of_kind("Deployment"):
        (container,) = d["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        ready, live = container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]
        assert (ready["path"], live["path"]) == ("/readyz", "/healthz")
        if container["args"] == ["run", "gateway"]:
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert ports[ready["port"]] == int(env["GROVE_PORT"]) and env["GROVE_HOST"] == "0.0.0.0"
            # its /healthz answers only once connected, after a JetStream wait of any length: liveness
            # must not start before minutes of it (the step services answer /healthz while they wait)
            start = container["startupProbe"]
            assert start["httpGet"]["path"] == "/healthz" and start["httpGet"]["port"] == live["port"]
            assert start.get("periodSeconds", 10) * start.get("failureThreshold", 3) >= 300
        else:
            assert ports[ready["port"]] == ports[live["port"]] == metrics_port


def _image_env() -> dict[str, str]:
    """The ENV of the Dockerfile's final stage: what every container starts with."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    final = text[text.rindex("\nFROM "):]
    env: dict[str, str] = {}
    for line in final.splitlines():
        if line.strip().upper().startswith("ENV "):
            env |= dict(word.split("=", 1) for word in line.split()[1:])
    return env


def test_the_metrics_endpoint_of_every_deployed_step_service_listens_for_the_scraper() -> None:
    """GROVE_METRICS_HOST is 127.0.0.1 unless set (a step service run by hand keeps its counters to
    itself); the image sets 0.0.0.0, or the probes and Prometheus of compose and Kubernetes, which
    reach the pod's address, would find nothing — and neither overrides it."""
    assert Settings.model_fields["metrics_host"].default == "127.0.0.1"
    assert _image_env()["GROVE_METRICS_HOST"] == "0.0.0.0"
    config = of_kind("ConfigMap")[0]["data"]
    envs = [config, *(svc.get("environment", {}) for svc in compose()["services"].values())]
    envs += [{e["name"]: e.get("value") for e in pod["containers"][0].get("env", [])} for _, pod in _pods()]
    assert all("GROVE_METRICS_HOST" not in env for env in envs)


def test_the_janitor_cronjob_runs_at_three_every_night() -> None:
    (cron,) = of_kind("CronJob")
    assert cron["spec"]["schedule"] == "0 3 * * *"
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["janitor"]


def test_the_gateway_service_selects_the_gateway_pods() -> None:
    (svc,) = of_kind("Service")
    gateway = next(d for d in of_kind("Deployment") if d["metadata"]["name"] == "grove-gateway")
    labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    (container,) = gateway["spec"]["template"]["spec"]["containers"]
    port_names = {p["name"] for p in container["ports"]}
    assert all(p["targetPort"] in port_names for p in svc["spec"]["ports"])


# -- S3 lifecycle --------------------------------------------------------------------------------------

def test_the_s3_lifecycle_rule_aborts_incomplete_uploads_after_two_days() -> None:
    rules = json.loads((DEPLOY / "s3-lifecycle.json").read_text())["Rules"]
    (rule,) = rules
    assert rule["Status"] == "Enabled"
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 2}
    assert rule["Filter"]["Prefix"] == "exports/"


# -- what the image installs ---------------------------------------------------------------------------

@pytest.mark.slow
def test_the_docker_build_context_makes_a_complete_wheel(tmp_path: Path) -> None:
    """The Dockerfile's build stage, without Docker: the files it COPYs (all that
    Dockerfile.dockerignore lets in) make a wheel with every module, template and the entry point."""
    import shutil
    import sys
    import zipfile

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, ctx / name)
    for name in ("shared", "services"):
        shutil.copytree(ROOT / name, ctx / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wanted = {str(p.relative_to(ctx)) for p in ctx.rglob("*") if p.is_file()
              and p.suffix in (".py", ".j2", ".html", ".css", ".js", ".json", ".yaml")}
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                          str(ctx)], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("grove_export-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert not wanted - names, f"missing from the image: {sorted(wanted - names)[:20]}"
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "grove-export = services.console:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_the_admin_setup_runs_before_the_services_in_compose_and_kubernetes() -> None:
    """Service users may only bind: `grove-export setup` as admin creates the stream, buckets and durables."""
    services = compose()["services"]
    setup = services["setup"]
    assert setup["command"] == ["setup", "--no-lifecycle"] and setup["restart"] == "no"  # MinIO drops the rule
    assert setup["environment"]["GROVE_NATS_USER"] == ADMIN
    assert "setup" not in setup["depends_on"]
    for name in GROVE_SERVICES:
        assert services[name]["depends_on"]["setup"]["condition"] == "service_completed_successfully", name
    (job,) = of_kind("Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["setup"]
    env = {e["name"]: e for e in container["env"]}
    assert env["GROVE_NATS_USER"]["value"] == ADMIN
    assert env["GROVE_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == password_env(ADMIN)
