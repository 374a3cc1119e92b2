"""Shared test set-up: where the fixtures and the shared corpus are, and the golden-file switch.

Golden files are refreshed with `pytest --update-golden`; the refresh rewrites them in place so a
reviewer reads the change as a `git diff`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fhir_server import fhir_server_url  # noqa: F401  (session fixture: the HAPI server)

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
GOLDEN = REPO / "tests" / "golden"
EXAMPLE = REPO / "examples" / "NCT05765006.txt"
# The shared corpus sits beside the repository (../shared/corpus) on development and CI machines.
SHARED = REPO.parent / "shared"
CORPUS_JSON = SHARED / "corpus" / "ctgov-v2"
CORPUS_XML = SHARED / "corpus" / "ctgov-xml"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the golden files under tests/golden from the current output",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


def corpus_files(folder: Path, pattern: str) -> list[Path]:
    """Corpus files, or a skip naming the missing folder (the repo's own tests still run)."""
    if not folder.is_dir():
        pytest.skip(
            f"shared corpus not found at {folder}: corpus-wide checks need ../shared/corpus"
        )
    return sorted(folder.glob(pattern))
