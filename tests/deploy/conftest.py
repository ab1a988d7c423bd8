from tests.containers import built_image, containers, engine, service_images  # noqa: F401  (fixtures)
