"""The Dockerfile and docker-compose.yml, checked without a Docker engine: linted, parsed, and
held to what the code really offers (commands, settings, files)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ordergraph.cli import build_parser
from ordergraph.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_dockerfile_passes_hadolint() -> None:
    # The wheel puts the binary next to this interpreter (whichever checkout runs the tests).
    hadolint = str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        hadolint = shutil.which("hadolint") or hadolint
    result = subprocess.run([hadolint, "--failure-threshold", "info", "-"],
                            input=DOCKERFILE, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multi_stage_slim_non_root_with_a_healthcheck() -> None:
    stages = re.findall(r"^FROM (\S+)", DOCKERFILE, re.MULTILINE)
    assert len(stages) == 2
    assert all("slim" in image for image in stages)
    final = DOCKERFILE.split("\nFROM ")[-1]
    assert "apt-get" not in final
    assert "gcc" not in final
    assert re.search(r"^USER 10001", final, re.MULTILINE)
    assert 'HEALTHCHECK' in final
    assert '"ordergraph", "healthcheck"' in final
    assert 'CMD ["ordergraph", "serve"]' in final
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE, re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), path


def test_both_stages_share_one_base_pinned_by_digest_or_said_to_be_unpinned() -> None:
    images = set(re.findall(r"^FROM (\S+)", DOCKERFILE, re.MULTILINE))
    assert len(images) == 1, images
    image = images.pop()
    if "@" not in image:  # no registry reachable where it was written: the header says so
        assert "NOT PINNED BY DIGEST" in DOCKERFILE
        return
    tag, digest = image.split("@")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    assert re.search(rf"^#.*\b{re.escape(tag)}\b", DOCKERFILE, re.MULTILINE)


def test_every_command_the_images_run_exists() -> None:
    parser = build_parser()
    commands = [["serve"], ["healthcheck"], ["migrate"], ["seed"]]
    for service in COMPOSE["services"].values():
        command = service.get("command")
        if command and command[0] == "ordergraph":
            commands.append(command[1:])
    for command in commands:
        parser.parse_args(command)  # exits on an unknown command


def test_compose_services_profiles_and_dependencies() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"postgres", "redis", "migrate", "app", "localstripe", "demo-setup",
                             "demo"}
    assert services["app"]["profiles"] == ["production"]
    assert services["app"]["depends_on"]["migrate"]["condition"] == \
        "service_completed_successfully"
    assert services["app"]["environment"]["BROADCAST_URL"] == "redis://redis:6379"
    assert {services[name]["profiles"][0] for name in ("localstripe", "demo-setup", "demo")} \
        == {"demo"}
    assert "healthcheck" in services["postgres"]
    assert "healthcheck" in services["redis"]


def setting_names() -> set[str]:
    text = (ROOT / "ordergraph" / "settings.py").read_text()
    return set(re.findall(r'(?:get|integer|flag)\("([A-Z_]+)"', text))


@pytest.mark.parametrize("service", ["migrate", "app", "demo", "demo-setup"])
def test_compose_sets_only_real_settings_and_they_validate(service: str) -> None:
    environment = dict(COMPOSE["services"][service]["environment"])
    unknown = set(environment) - setting_names()
    assert unknown == set()
    resolved = {key: re.sub(r"\$\{[^}]*\}", "", str(value)) for key, value in
                environment.items()}
    if service in ("migrate", "app"):  # production: the operator supplies the secrets
        resolved |= {"JWT_SECRET": "s" * 40, "STRIPE_SECRET_KEY": "sk_live_x",
                     "STRIPE_WEBHOOK_SECRET": "whsec_x"}
        resolved.setdefault("ORDERGRAPH_ENV", "production")
    settings = Settings.from_env(resolved, dotenv_path=None)
    assert settings.database_url.startswith("postgresql+psycopg://")
