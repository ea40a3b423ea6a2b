"""Fixtures: a fake HandCash Cloud on 127.0.0.1 and HandCashCharge wired to it."""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from mpp_client.methods.handcash import ConnectSigner, HandCashCharge
from tests.handcash.handcash_fake_cloud import APP_ID, APP_SECRET, FakeHandCashCloud
from tests.loopback_server import serve

#: A throwaway test key (sha256 of a label), never a real wallet.
AUTH_TOKEN = hashlib.sha256(b"mpp-client handcash test wallet").hexdigest()
PUBLIC_KEY = ConnectSigner(AUTH_TOKEN).public_key


@pytest.fixture
def cloud() -> FakeHandCashCloud:
    return FakeHandCashCloud(limits={PUBLIC_KEY: Decimal("1.00")})


@pytest.fixture
def cloud_url(cloud: FakeHandCashCloud) -> Iterator[str]:
    with serve(cloud.app()) as url:
        yield url


@pytest.fixture
def make_handcash(cloud_url: str) -> Callable[..., HandCashCharge]:
    def make(**kwargs: Any) -> HandCashCharge:
        kwargs.setdefault("app_id", APP_ID)
        kwargs.setdefault("app_secret", APP_SECRET)
        kwargs.setdefault("auth_token", AUTH_TOKEN)
        return HandCashCharge(base_url=cloud_url, **kwargs)

    return make


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    # See tests/stripe/conftest.py: run this test's finalizers before the next compile.
    yield
    gc.collect()
