"""uv.lock is what every install uses (`make`, the Dockerfile), so it must say what
pyproject.toml asks for, carry a hash for every file it names, and be installed by one uv."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCK = tomllib.loads((ROOT / "uv.lock").read_text())
MAKEFILE = (ROOT / "Makefile").read_text()
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_the_lock_agrees_with_pyproject() -> None:
    # --offline: a lock that satisfies pyproject.toml is checked from its own contents; one that
    # does not would need a fresh resolution, which fails here rather than quietly resolving.
    uv = Path(sys.executable).parent / "uv"
    result = subprocess.run(
        [str(uv), "lock", "--check", "--offline", "--python", sys.executable],
        cwd=ROOT, capture_output=True, text=True, check=False,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"})
    assert result.returncode == 0, (
        "pyproject.toml and uv.lock disagree: run `make lock` and commit uv.lock\n"
        + result.stdout + result.stderr)


def test_every_locked_file_has_a_hash() -> None:
    for package in LOCK["package"]:
        if "registry" not in package["source"]:
            continue  # the project itself, installed from this checkout
        files = package.get("wheels", []) + ([package["sdist"]] if "sdist" in package else [])
        assert files, package["name"]
        for file in files:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", file["hash"]), (package["name"], file)


def test_one_uv_version_everywhere() -> None:
    locked = {package["name"]: package["version"] for package in LOCK["package"]}["uv"]
    assert f'"uv=={locked}"' in (ROOT / "pyproject.toml").read_text()
    assert re.search(rf"^UV_VERSION := {re.escape(locked)}$", MAKEFILE, re.MULTILINE)
    assert f"pip install uv=={locked}\n" in DOCKERFILE


def test_make_and_the_image_install_from_the_lock() -> None:
    # The install step reruns when either file changes, and refuses a stale lock.
    assert re.search(r"^STAMP := .*cat pyproject.toml uv.lock", MAKEFILE, re.MULTILINE)
    assert re.search(r"^\$\(STAMP\): pyproject.toml uv.lock", MAKEFILE, re.MULTILINE)
    assert re.search(r"\$\(UV\) sync .*--locked", MAKEFILE)
    assert re.search(r"^lock:", MAKEFILE, re.MULTILINE)
    assert "pip install -e" not in MAKEFILE
    assert re.search(r"^COPY .*\buv\.lock\b", DOCKERFILE, re.MULTILINE)
    installs = re.findall(r"^RUN (?:pip|uv) .*", DOCKERFILE, re.MULTILINE)
    assert installs[0].startswith("RUN pip install uv==")
    assert all(line.startswith("RUN uv sync --locked") for line in installs[1:]), installs
