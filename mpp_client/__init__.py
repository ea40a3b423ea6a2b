"""mpp_client: pay for HTTP resources over the Machine Payments Protocol (HTTP 402)."""

from mpp_client.errors import *  # noqa: F403  (replaced by an explicit list once the API settles)
