"""compose.yaml cannot be run here (no Docker): this checks what can be checked without it.
It parses; each speaker-memory service's command is one the CLI accepts; each setting it
sets is a real one and together they validate (the queue on PostgreSQL); the GPU worker
reserves a GPU on the CUDA image; the build arguments are the Dockerfile's, and the extra
they install brings the job queue."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.cli import build_parser
from tools.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "SPEAKER_MEMORY_"


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def ours(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items()
            if str(s.get("image", "")).startswith("speaker-memory")}


def substituted(value: str) -> str:
    """${NAME:-default} as its default; ${NAME:?message} and ${NAME} as an operator's values
    would fill them."""
    value = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)
    return re.sub(r"\$\{[A-Z_]+(?::\?[^}]*)?\}", "secret", value)


def test_postgresql_is_the_pgvector_image(services: dict[str, dict[str, Any]]) -> None:
    postgres = services["postgres"]
    assert str(postgres["image"]).startswith("pgvector/pgvector:")
    command = [str(part) for part in postgres["command"]]
    assert command[0] == "postgres"
    assert "shared_buffers=${POSTGRES_SHARED_BUFFERS:-2GB}" in command[1:]  # default 2 GB


def test_every_command_is_one_the_cli_accepts(services: dict[str, dict[str, Any]]) -> None:
    parser = build_parser()
    commands = {name: s["command"] for name, s in ours(services).items()}
    assert {c[0] for c in commands.values()} == {"serve", "worker"}
    for name, command in commands.items():
        args = parser.parse_args(command)  # argparse exits on a flag it does not know
        assert args.command == command[0], name


def test_every_setting_is_real_and_together_they_validate(
    services: dict[str, dict[str, Any]]
) -> None:
    fields = {PREFIX + name.upper() for name in Settings.model_fields}
    for name, service in ours(services).items():
        env = {k: substituted(str(v)) for k, v in service["environment"].items()}
        unknown = sorted(k for k in env if k.startswith(PREFIX) and k not in fields)
        assert unknown == [], f"{name} sets settings that do not exist: {unknown}"
        settings = Settings(**{k.removeprefix(PREFIX).lower(): v for k, v in env.items()})
        assert settings.job_queue == "procrastinate", name
        assert str(settings.audio_dir) in [v.split(":")[1] for v in service["volumes"]], name


def test_the_gpu_worker_reserves_a_gpu_on_the_cuda_image(
    services: dict[str, dict[str, Any]]
) -> None:
    gpu = services["gpu-worker"]
    assert gpu["build"]["args"]["VARIANT"] == "cuda"
    assert gpu["command"][:1] == ["worker"] and "cuda" in gpu["command"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in d["capabilities"] for d in devices)


def test_build_arguments_are_the_dockerfiles_and_bring_the_queue(
    services: dict[str, dict[str, Any]]
) -> None:
    declared = set(re.findall(r"^ARG (\w+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE))
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for name, service in ours(services).items():
        args = service["build"]["args"]
        assert set(args) <= declared, name
        assert any(d.startswith("procrastinate") for d in extras[args["EXTRAS"]]), name
