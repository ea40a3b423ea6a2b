"""The public surface of mpp_client.protocol, and its purity (no I/O, stdlib only)."""

from __future__ import annotations

import ast
import dataclasses
import sys
from pathlib import Path

import pytest

import mpp_client.protocol as protocol
from mpp_client.protocol import (
    AcceptPaymentEntry,
    Challenge,
    Credential,
    Problem,
    Receipt,
    parse_challenge,
)

PUBLIC = [
    "AcceptPaymentEntry",
    "Challenge",
    "Credential",
    "Problem",
    "Receipt",
    "b64url_decode",
    "b64url_encode",
    "canonical_json",
    "compute_challenge_id",
    "content_digest",
    "digest_matches",
    "format_accept_payment",
    "format_timestamp",
    "parse_accept_payment",
    "parse_challenge",
    "parse_challenges",
    "parse_credential",
    "parse_problem",
    "parse_receipt",
    "parse_timestamp",
]
PACKAGE_DIR = Path(protocol.__file__).parent


def test_all_is_exactly_the_public_surface_and_sorted() -> None:
    assert protocol.__all__ == PUBLIC
    assert sorted(protocol.__all__) == protocol.__all__
    exported = {name for name in vars(protocol) if not name.startswith("_")}
    modules = {p.stem for p in PACKAGE_DIR.glob("*.py")}
    assert exported - modules == set(PUBLIC)


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_has_a_docstring(name: str) -> None:
    assert (getattr(protocol, name).__doc__ or "").strip()


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(PACKAGE_DIR.glob("*.py")), ids=lambda p: p.name)
def test_protocol_modules_import_only_the_stdlib_and_the_error_tree(path: Path) -> None:
    for name in _imports(path):
        top = name.partition(".")[0]
        allowed = (
            top in sys.stdlib_module_names
            or name == "mpp_client.errors"
            or name.startswith("mpp_client.protocol")
        )
        assert allowed, f"{path.name} imports {name}"
        assert top not in {"socket", "ssl", "urllib", "http", "asyncio", "subprocess", "os"}


@pytest.mark.parametrize("cls", [AcceptPaymentEntry, Challenge, Credential, Problem, Receipt])
def test_value_types_are_frozen_slotted_dataclasses(cls: type) -> None:
    assert dataclasses.is_dataclass(cls)
    assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert "__slots__" in vars(cls)


def test_a_challenge_cannot_be_modified() -> None:
    challenge = parse_challenge(
        'Payment id="a", realm="r", method="tempo", intent="charge", request="e30"'
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        challenge.request = "eyJ9"  # type: ignore[misc]


def test_challenge_field_order_is_the_documented_one() -> None:
    names = [f.name for f in dataclasses.fields(Challenge)]
    assert names == [
        "id",
        "realm",
        "method",
        "intent",
        "request",
        "request_data",
        "expires",
        "digest",
        "description",
        "opaque",
        "header",
    ]
    compared = {f.name for f in dataclasses.fields(Challenge) if f.compare}
    assert "request_data" not in compared
