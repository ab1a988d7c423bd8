from collections.abc import Iterator

import pytest

from tests.containers import built_image, containers, engine, service_images  # noqa: F401  (fixtures)
from tests.deploy.test_compose import Project


@pytest.fixture(scope="module")
def project(engine, built_image, service_images,  # noqa: F811  (the fixtures above)
            tmp_path_factory, request) -> Iterator[Project]:
    """The Compose stack, up and serving: one per test module (Compose, faults)."""
    folder = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    made = Project(engine, built_image, service_images, folder)
    try:
        made.compose("up", "-d")
        made.wait_serving()
        yield made
    finally:
        made.remove()
