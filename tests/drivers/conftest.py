from tests.drivers.harness import (  # noqa: F401  (fixtures)
    base_url,
    driver,
    driver_name,
    guard,
    method,
    server,
)
