"""JSON-RPC over effects: every call is an ``HttpCall`` the driver runs on its reused client."""

from __future__ import annotations

import itertools
from collections.abc import Generator
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from mpp_client.effects import Effect, HttpCall, HttpReply
from mpp_client.errors import MethodError
from mpp_client.secret import Secrets, scrub

__all__ = ["RpcError", "rpc_call", "url_secrets"]

_ids = itertools.count(1)
_METHOD_NOT_FOUND = -32601


class RpcError(MethodError):
    """The chain's RPC endpoint answered with an error (``code`` is the JSON-RPC code, or the
    HTTP status when the body was not JSON-RPC).

    ``money_moved`` defaults to ``None`` (not known): an error answer to a broadcast is no proof
    that the node did not take the transaction. Callers that know better (nothing was signed
    yet) say so by raising ``NothingSent`` instead.
    """

    def __init__(
        self, reason: str, *, code: int | None = None, money_moved: bool | None = None
    ) -> None:
        super().__init__(reason, money_moved=money_moved)
        self.code = code

    @property
    def method_not_found(self) -> bool:
        """The endpoint does not implement the method."""
        return self.code == _METHOD_NOT_FOUND


# Path segments at least this long are taken for API keys (``/v2/<key>`` of hosted nodes).
_KEY_SEGMENT = 16


def url_secrets(url: str) -> Secrets:
    """What in an RPC URL may be a credential: the password of its userinfo, every query
    value and every long path segment (hosted RPC providers put API keys there)."""
    parts = urlsplit(url)
    found = Secrets()
    if parts.password:
        found.add(unquote(parts.password))
    for _, value in parse_qsl(parts.query):
        if value:
            found.add(value)
    for segment in parts.path.split("/"):
        if len(segment) >= _KEY_SEGMENT:
            found.add(unquote(segment))
    return found


def rpc_call(
    url: str, method: str, params: list[Any], *, timeout: float = 10.0, retry_safe: bool = True
) -> Generator[Effect, Any, Any]:
    """Call ``method`` at ``url`` and return its ``result``; raise ``RpcError`` on an error.

    ``retry_safe`` is true for reads; a broadcast passes false so the driver never sends it twice.
    """
    body = {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params}
    reply: HttpReply = yield HttpCall.json_post(url, body, timeout=timeout, retry_safe=retry_safe)
    try:
        answer = reply.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise RpcError(
            f"{method}: HTTP {reply.status} without a JSON-RPC answer", code=reply.status
        )
    error = answer.get("error")
    if error is not None:
        code = error.get("code") if isinstance(error, dict) else None
        message = error.get("message") if isinstance(error, dict) else str(error)
        # A node (or a proxy) may echo the request, and hosted RPC URLs carry API keys.
        raise RpcError(
            f"{method}: {scrub(str(message), url_secrets(url))}",
            code=code if isinstance(code, int) else None,
        )
    if "result" not in answer:
        raise RpcError(f"{method}: answer has neither result nor error", code=reply.status)
    return answer["result"]
