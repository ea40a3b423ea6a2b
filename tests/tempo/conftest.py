from tests.peers.fixtures import (  # noqa: F401  (fixtures)
    anvil,
    mppx_merchant,
    mppx_server,
    pympp_merchant,
    pympp_server,
)
