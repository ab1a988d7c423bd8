from tests.containers import built_image, containers, each_image, engine  # noqa: F401  (fixtures)
