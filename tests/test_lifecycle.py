"""The payment lifecycle table (mpp_client.lifecycle): the rules every journal and guard follow."""

from __future__ import annotations

from typing import get_args

import pytest

from mpp_client.lifecycle import (
    FINAL_STATES,
    IN_FLIGHT_STATES,
    LEFT_STATES,
    PaymentState,
    allowed_sources,
    holds,
    on_restart,
    release_needs_proof,
)

STATES = get_args(PaymentState)


def test_nothing_moves_out_of_a_final_state():
    for target in STATES:
        if target == "reserved":
            continue  # only ever inserted
        assert not allowed_sources(target) & FINAL_STATES


def test_every_state_holds_money_except_a_failure_proven_to_have_moved_nothing():
    for state in STATES:
        for moved in (None, True, False):
            assert holds(state, moved) is not (state == "failed" and moved is False)


def test_a_release_needs_a_proof_once_something_may_have_left():
    assert {s for s in STATES if release_needs_proof(s)} == LEFT_STATES
    assert not release_needs_proof("reserved") and not release_needs_proof("signed")


def test_after_a_crash_only_a_bare_reservation_is_released():
    assert {s: on_restart(s) for s in IN_FLIGHT_STATES} == {
        "reserved": "failed",
        "signed": "unknown",
        "broadcast": "unknown",
        "sent": "unknown",
    }
    assert all(on_restart(s) is None for s in (*FINAL_STATES, "unknown"))


def test_unknown_names_are_refused():
    with pytest.raises(ValueError):
        allowed_sources("paid")
    with pytest.raises(ValueError):
        holds("paid", None)
