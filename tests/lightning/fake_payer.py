"""A LightningPayer double for the charge's own tests: records every pay call and lookup."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from mpp_client.effects import Effect
from mpp_client.methods.base import LookupResult
from mpp_client.methods.lightning.payer import LightningPayer, PayResult


class RecordingPayer(LightningPayer):
    name = "recording"

    def __init__(
        self,
        outcome: Callable[[str, int], PayResult],
        *,
        lookup_status: str = "settled",
        lookup_error: Exception | None = None,
    ) -> None:
        self.outcome = outcome
        self.lookup_status = lookup_status
        self.lookup_error = lookup_error
        self.calls: list[tuple[str, int]] = []
        self.lookups: list[str] = []

    @property
    def identity(self) -> str:
        return "recording:node-1"

    def pay(self, invoice: str, max_fee_sats: int) -> Generator[Effect, Any, PayResult]:
        self.calls.append((invoice, max_fee_sats))
        return self.outcome(invoice, max_fee_sats)
        yield

    def lookup(self, payment_hash: str) -> Generator[Effect, Any, LookupResult]:
        self.lookups.append(payment_hash)
        if self.lookup_error is not None:
            raise self.lookup_error
        return LookupResult(self.lookup_status, payment_hash, amount=100)  # type: ignore[arg-type]
        yield
