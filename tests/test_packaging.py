"""The installed package is complete: the wheel carries the code tables, and the README documents
every command the CLI has."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import typer

from fhirconv.cli import app
from tests.conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation: the build backend (hatchling) comes from the dev extras, so no network.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
    )
    (built,) = out.glob("fhirconv-*.whl")
    return built


def test_wheel_carries_every_mapping_table(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    tables = sorted(p.name for p in (REPO / "mappings").iterdir() if p.is_file())
    assert tables
    missing = [t for t in tables if f"fhirconv/_mappings/{t}" not in names]
    assert missing == []


def test_installed_package_loads_tables_from_itself(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    probe = (
        "from fhirconv.tables import mappings_dir, load_json;"
        "print(mappings_dir());"
        "print(load_json('phase.json')['map']['PHASE1+PHASE2']['code'])"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    folder, code = result.stdout.split()
    assert folder.startswith(str(target)) and folder.endswith("_mappings")
    assert code == "phase-1-phase-2"


def test_readme_documents_every_command() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    commands = [
        c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands
    ]
    assert commands
    undocumented = [c for c in commands if not re.search(rf"`fhirconv {c}\b", readme)]
    assert undocumented == []
    assert isinstance(app, typer.Typer)
