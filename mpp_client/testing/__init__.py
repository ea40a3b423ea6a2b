"""Test helpers for mpp_client and for users' own tests: a fake MPP server and a payment
method that moves no money. Nothing here is for production use."""

from mpp_client.testing.clock import ManualClock
from mpp_client.testing.method import TEST_CURRENCY, TEST_SECRET, TestMethod, test_proof
from mpp_client.testing.server import FakeMppServer, Offer, RecordedRequest, Route

__all__ = [
    "FakeMppServer",
    "ManualClock",
    "Offer",
    "RecordedRequest",
    "Route",
    "TEST_CURRENCY",
    "TEST_SECRET",
    "TestMethod",
    "test_proof",
]
