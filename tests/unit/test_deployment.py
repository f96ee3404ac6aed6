"""The Dockerfile and the compose files, checked without a Docker engine: linted, parsed, and
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
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # production
DEMO = yaml.safe_load((ROOT / "docker-compose.demo.yml").read_text())
# ${VAR:?message}: compose stops, naming VAR, when it is unset or empty.
REQUIRED_VARIABLE = re.compile(r"\$\{[A-Z_]+:\?[^}]*\}")


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
    for service in [*COMPOSE["services"].values(), *DEMO["services"].values()]:
        command = service.get("command")
        if command and command[0] == "ordergraph":
            commands.append(command[1:])
    for command in commands:
        parser.parse_args(command)  # exits on an unknown command


def test_compose_services_and_dependencies() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"postgres", "redis", "migrate", "app"}
    assert services["app"]["depends_on"]["migrate"]["condition"] == \
        "service_completed_successfully"
    assert services["app"]["environment"]["BROADCAST_URL"] == "redis://redis:6379"
    assert set(DEMO["services"]) == {"postgres", "redis", "localstripe", "demo-setup", "demo"}
    assert COMPOSE["name"] != DEMO["name"]  # their volumes and networks stay apart
    for compose in (COMPOSE, DEMO):
        assert "healthcheck" in compose["services"]["postgres"]
        assert "healthcheck" in compose["services"]["redis"]


@pytest.mark.parametrize("compose", [COMPOSE, DEMO], ids=["production", "demo"])
def test_long_running_services_restart_and_one_shots_do_not(compose: dict) -> None:
    for name, service in compose["services"].items():
        one_shot = name in ("migrate", "demo-setup")
        assert service.get("restart") == ("no" if one_shot else "unless-stopped"), name


def test_production_compose_writes_no_secret() -> None:
    # Every password, secret or key is a required substitution, never a literal or a default.
    for name, service in COMPOSE["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|_KEY$", key):
                assert REQUIRED_VARIABLE.fullmatch(str(value)), (name, key, value)
    database_url = COMPOSE["x-app-environment"]["DATABASE_URL"]
    password = re.fullmatch(r"postgresql\+psycopg://\w+:(.+)@postgres:5432/\w+",
                            database_url).group(1)
    assert REQUIRED_VARIABLE.fullmatch(password)
    assert "${POSTGRES_PASSWORD:?" in password
    assert "JWT_SECRET" not in COMPOSE["services"]["migrate"]["environment"]  # release step


def names_the_settings_read() -> set[str]:
    """Every environment variable Settings._from_values looks up, recorded as it does."""

    class Recording(dict):
        def get(self, key: str, default: object = None) -> object:
            names.add(key)
            return super().get(key, default)

    names: set[str] = set()
    Settings._from_values(Recording())
    return names


def test_the_recorded_names_are_the_settings() -> None:
    names = names_the_settings_read()
    assert {"DATABASE_URL", "JWT_SECRET", "TRUSTED_PROXIES", "BROADCAST_URL"} <= names
    assert "database_url" not in names


def resolve(environment: dict, required: dict[str, str]) -> dict[str, str]:
    """The environment as compose would pass it: ${VAR:?..} from `required`, ${VAR:-} empty."""

    def substitute(match: re.Match[str]) -> str:
        return required[match.group(1)] if match.group(2) == "?" else ""

    return {key: re.sub(r"\$\{([A-Z_]+):([?-])[^}]*\}", substitute, str(value))
            for key, value in environment.items()}


OPERATOR_SUPPLIES = {"POSTGRES_PASSWORD": "pw", "JWT_SECRET": "s" * 40,
                     "STRIPE_SECRET_KEY": "sk_live_x", "STRIPE_PUBLISHABLE_KEY": "pk_live_x",
                     "STRIPE_WEBHOOK_SECRET": "whsec_x",
                     "SMTP_URL": "smtp://user:pw@smtp.example.com:587",
                     "MAIL_FROM": "Shop <orders@shop.example.com>",
                     "PUBLIC_URL": "https://shop.example.com"}


@pytest.mark.parametrize(("compose", "service"), [
    (COMPOSE, "migrate"), (COMPOSE, "app"), (DEMO, "demo"), (DEMO, "demo-setup")])
def test_compose_sets_only_real_settings_and_they_validate(compose: dict, service: str) -> None:
    environment = dict(compose["services"][service]["environment"])
    assert set(environment) - names_the_settings_read() == set()
    resolved = resolve(environment, OPERATOR_SUPPLIES)
    resolved.setdefault("ORDERGRAPH_ENV", "production")  # the image's default
    # The release step validates as the CLI does for it: the database settings only.
    settings = Settings.from_env(resolved, dotenv_path=None,
                                 database_only=service in ("migrate", "demo-setup"))
    assert settings.database_url.startswith("postgresql+psycopg://")
