"""Test helpers for mpp_client and for users' own tests: a fake MPP server and a payment
method that moves no money, a manual clock, and the trampolines that run effect generators
(``drive``, ``drive_async``: the same ones the drivers use) for tests of payment methods.
Nothing here is for production use."""

from mpp_client.testing.clock import ManualClock
from mpp_client.testing.method import TEST_CURRENCY, TEST_SECRET, TestMethod, test_proof
from mpp_client.testing.server import FakeMppServer, Offer, RecordedRequest, Route
from mpp_client.trampoline import drive, drive_async

__all__ = [
    "FakeMppServer",
    "ManualClock",
    "Offer",
    "RecordedRequest",
    "Route",
    "TEST_CURRENCY",
    "TEST_SECRET",
    "TestMethod",
    "drive",
    "drive_async",
    "test_proof",
]
