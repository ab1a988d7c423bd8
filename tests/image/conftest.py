from tests.containers import built_image, containers, engine  # noqa: F401  (fixtures)
