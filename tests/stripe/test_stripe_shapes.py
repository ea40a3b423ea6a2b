"""The fake Stripe and the client against ONE fixture of the published shapes.

``tests/stripe/shapes.json`` holds facts read from the stripe-python 16.1.0b1 preview types
(parameter names, which are required, object fields). The fake refuses what the fixture does
not list and builds objects with exactly its fields; these tests check that the client sends
only listed parameters (all required ones included) and that the fake's objects and routes
match the fixture. When the preview SDK's sources are available (``STRIPE_SDK_SRC`` pointing at
an unpacked ``stripe==16.1.0b1`` wheel, e.g. ``pip download stripe==16.1.0b1 --no-deps`` and
unzip), the fixture itself is checked against the SDK's type definitions.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from tests.stripe.challenges import FAKE_LIVE_KEY, stripe_challenge
from tests.stripe.stripe_fake import ISSUE, SHAPES, TEST_GRANT, FakeStripe, shape_problem
from tests.stripe.test_stripe_pay import pay, seller_charges


@pytest.mark.parametrize("live", [False, True])
@pytest.mark.parametrize("external_id", [None, "order-7"])
def test_client_sends_only_published_parameters(make_stripe, fake_stripe, live, external_id):
    kwargs = {"customer": "cus_1"}
    if live:
        kwargs["secret_key"] = FAKE_LIVE_KEY
    pay(make_stripe(**kwargs), stripe_challenge(externalId=external_id))
    [call] = fake_stripe.token_creations()
    request = ISSUE if live else TEST_GRANT
    assert call.path == SHAPES["requests"][request]["path"]
    assert shape_problem(call.form, request) is None
    assert call.status == 200


def test_fixture_refuses_what_the_sdk_does_not_list():
    form = [("payment_method", "pm_1"), ("usage_limits[currency]", "usd")]
    form.append(("usage_limits[max_amount]", "5"))
    assert shape_problem(form, TEST_GRANT) is None
    assert shape_problem([*form, ("seller_details[network_id]", "x")], TEST_GRANT) == (
        "Received unknown parameter: seller_details[network_id]",
        "seller_details[network_id]",
    )
    assert shape_problem([*form, ("customer", "cus_1")], ISSUE)[1] == "customer"
    assert shape_problem(form, ISSUE) == (
        "Missing required param: seller_details.",
        "seller_details",
    )
    ok = [*form, ("seller_details[network_business_profile]", "p"), ("shared_metadata[k]", "v")]
    assert shape_problem(ok, ISSUE) is None


def test_fake_objects_have_the_published_fields(make_stripe, fake_stripe, stripe_url):
    live, _ = pay(make_stripe(secret_key=FAKE_LIVE_KEY), stripe_challenge())
    test, _ = pay(make_stripe(), stripe_challenge(challenge_id="ch_2"), call_id="call-2")
    objects = SHAPES["objects"]
    for token_id, name in ((live.reference, "shared_payment.issued_token"),
                           (test.reference, "shared_payment.granted_token")):  # fmt: skip
        token = fake_stripe.tokens[token_id]
        assert token["object"] == name
        assert set(token) == set(objects[name]["fields"])
        assert set(token["usage_limits"]) == set(objects["usage_limits"]["fields"])
        assert set(token["usage_details"]) == set(objects["usage_details"]["fields"])
    assert set(fake_stripe.tokens[live.reference]["seller_details"]) == set(
        objects["shared_payment.issued_token"]["seller_details"]
    )
    assert seller_charges(stripe_url, test.reference, 2500).status_code == 200
    captured = fake_stripe.tokens[test.reference]["usage_details"]["amount_captured"]
    assert set(captured) == set(objects["usage_details.amount_captured"]["fields"])


def test_fake_serves_every_published_route():
    routes = {(method, route.path) for route in FakeStripe().app().routes
              for method in (route.methods or ())}  # type: ignore[attr-defined]  # fmt: skip
    for shape in SHAPES["requests"].values():
        assert (shape["method"], shape["path"]) in routes


# -- the fixture against the SDK's own type definitions (only when they are available) ---------

_SDK = os.environ.get("STRIPE_SDK_SRC")
_PARAM_FILES = {
    ISSUE: ("params/shared_payment/_issued_token_create_params.py", "IssuedTokenCreateParams"),
    TEST_GRANT: (
        "params/test_helpers/shared_payment/_granted_token_create_params.py",
        "GrantedTokenCreateParams",
    ),
}


def _typed_dict_params(source: str, root: str) -> dict[str, str]:
    """Form names -> required/optional, flattened from the TypedDicts of one params file."""
    classes = {node.name: node for node in ast.parse(source).body if isinstance(node, ast.ClassDef)}

    def walk(name: str, prefix: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in classes[name].body:
            if not isinstance(item, ast.AnnAssign) or not isinstance(item.target, ast.Name):
                continue
            text = ast.unparse(item.annotation)
            need = "optional" if text.startswith("NotRequired") else "required"
            field = item.target.id if not prefix else f"{prefix}[{item.target.id}]"
            nested = [c for c in classes if c != name and c.startswith(root) and c in text]
            if nested:
                out |= walk(max(nested, key=len), field)
            elif "Dict[" in text or "List[" in text:
                out[f"{field}[*]"] = need
            else:
                out[field] = need
        return out

    return walk(root, "")


@pytest.mark.skipif(not _SDK, reason="STRIPE_SDK_SRC (unpacked stripe 16.1.0b1) not given")
@pytest.mark.parametrize("request_name", sorted(_PARAM_FILES))
def test_fixture_matches_the_sdk_types(request_name):
    path, root = _PARAM_FILES[request_name]
    sdk = _typed_dict_params((Path(_SDK or "") / "stripe" / path).read_text(), root)
    fixture = dict(SHAPES["requests"][request_name]["params"])
    assert sdk == fixture
    # Required nested objects (``seller_details``, ``usage_limits``) are required in the SDK.
    source = (Path(_SDK or "") / "stripe" / path).read_text()
    for obj in SHAPES["requests"][request_name]["required_objects"]:
        assert f"    {obj}: " in source and f"    {obj}: NotRequired" not in source
