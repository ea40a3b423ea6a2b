"""Challenges, contexts and an effect runner for the HandCash tests."""

from __future__ import annotations

from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from typing import Any

from mpp_client.effects import Checkpoint
from mpp_client.methods.base import PaymentContext
from mpp_client.protocol import Challenge
from mpp_client.runner import SyncRunner


def handcash_challenge(
    *,
    amount: str = "5",
    currency: str = "usd",
    recipient: str | None = "merchant",
    details: dict[str, Any] | None = None,
    expires_in: float | None = 300,
    challenge_id: str = "hc_challenge_1",
    **extra: Any,
) -> Challenge:
    request: dict[str, Any] = {"amount": amount, "currency": currency}
    if recipient is not None:
        request["recipient"] = recipient
    if details is not None:
        request["methodDetails"] = details
    request.update(extra)
    expires = None if expires_in is None else datetime.now(UTC) + timedelta(seconds=expires_in)
    return Challenge.create(
        id=challenge_id,
        realm="api.example.com",
        method="handcash",
        intent="charge",
        request=request,
        expires=expires,
    )


def context(url: str = "https://api.example.com/paid") -> PaymentContext:
    origin = "/".join(url.split("/")[:3])
    return PaymentContext(origin=origin, url=url, http_method="GET", now=datetime.now(UTC))


def run(gen: Generator[Any, Any, Any]) -> tuple[Any, list[Any]]:
    """Run an effect generator; return its value and every effect it yielded, in order."""
    runner = SyncRunner()
    effects: list[Any] = []
    reply: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                effect = gen.throw(error) if error is not None else gen.send(reply)
            except StopIteration as stop:
                return stop.value, effects
            effects.append(effect)
            reply, error = None, None
            if isinstance(effect, Checkpoint):
                continue
            try:
                reply = runner.perform(effect)
            except Exception as exc:
                error = exc
    finally:
        runner.close()
