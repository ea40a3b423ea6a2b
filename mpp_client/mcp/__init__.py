"""MPP over MCP. ``PaymentSession`` wraps an ``mcp.ClientSession`` (the official SDK,
``pip install mpp-client[mcp]``) so ``call_tool`` pays through the same flow and wallet as
HTTP; ``mpp_client.mcp.serve`` is ``mpp mcp serve``. See docs/mcp.md.

Importing ``mpp_client`` never imports this package; importing this package imports the MCP
SDK only when ``PaymentSession`` (or another name of ``mpp_client.mcp.client``) is used.
"""

from typing import TYPE_CHECKING, Any

from mpp_client.mcp.capability import PAYMENT_CAPABILITY, payment_capability
from mpp_client.mcp.challenges import (
    CREDENTIAL_META_KEY,
    PAYMENT_REQUIRED_CODE,
    PAYMENT_REQUIRED_META_KEY,
    RECEIPT_META_KEY,
    VERIFICATION_FAILED_CODE,
)

if TYPE_CHECKING:
    from mpp_client.mcp.client import (
        STDIO_SCHEME,
        PaidToolResult,
        PaymentSession,
        paying_http_client,
        stdio_server,
    )

__all__ = [
    "CREDENTIAL_META_KEY",
    "PAYMENT_CAPABILITY",
    "PAYMENT_REQUIRED_CODE",
    "PAYMENT_REQUIRED_META_KEY",
    "RECEIPT_META_KEY",
    "STDIO_SCHEME",
    "VERIFICATION_FAILED_CODE",
    "PaidToolResult",
    "PaymentSession",
    "payment_capability",
    "paying_http_client",
    "stdio_server",
]

_CLIENT = frozenset(
    {"STDIO_SCHEME", "PaidToolResult", "PaymentSession", "paying_http_client", "stdio_server"}
)


def __getattr__(name: str) -> Any:
    if name in _CLIENT:
        from mpp_client.extras import require_extra

        require_extra("mcp", f"mpp_client.mcp.{name}")
        from mpp_client.mcp import client

        return getattr(client, name)
    raise AttributeError(f"module 'mpp_client.mcp' has no attribute {name!r}")
