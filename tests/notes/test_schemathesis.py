"""Schemathesis generates requests from /openapi.json and checks every answer against it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from notes.auth import create_user
from notes.services import issue_token

from .conftest import PASSWORD, make_app


@pytest.fixture(scope="module")
def notes_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder: Path = tmp_path_factory.mktemp("schemathesis")
    app = make_app(f"sqlite:///{folder / 'notes.db'}", folder / "data")
    with app.app_context():
        user = create_user("fuzz@example.com", PASSWORD)
        app.config["FUZZ_TOKEN"] = issue_token(user, "fuzz")
    yield app


def test_api_matches_its_spec(notes_app: Any) -> None:
    """Every operation, a bounded number of generated cases each, answers as the spec says."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", notes_app)
    headers = {"Authorization": f"Bearer {notes_app.config['FUZZ_TOKEN']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers)

        check()
