"""The MPP wire format, and nothing else: strings and bytes in, frozen dataclasses out.

What travels on the wire (protocol README §2-§11):

- a 402 carries ``WWW-Authenticate: Payment id=..., realm=..., method=..., intent=...,
  request=<base64url JSON>`` challenges (:class:`Challenge`, :func:`parse_challenges`);
- the paid retry carries ``Authorization: Payment <base64url JSON>`` (:class:`Credential`),
  echoing the challenge verbatim plus a method-specific payload;
- a 2xx may carry ``Payment-Receipt: <base64url JSON>`` (:class:`Receipt`);
- errors come as RFC 9457 problem documents (:class:`Problem`);
- the client may announce what it pays with ``Accept-Payment`` (:class:`AcceptPaymentEntry`);
- a challenge may bind the request body with an RFC 9530 digest (:func:`digest_matches`).

This package does no I/O and imports nothing beyond the standard library and
:mod:`mpp_client.errors`. Every parse failure is a :class:`~mpp_client.errors.ParseError` (or
its subclass :class:`~mpp_client.errors.EncodingError` for base64url, UTF-8 and JSON); every
value that cannot be written is a :class:`~mpp_client.errors.FormatError`. Parsing is linear in
the input, so hostile headers cannot stall a client.
"""

from mpp_client.protocol.accept_payment import (
    AcceptPaymentEntry,
    format_accept_payment,
    parse_accept_payment,
)
from mpp_client.protocol.base64url import b64url_decode, b64url_encode
from mpp_client.protocol.body_digest import content_digest, digest_matches
from mpp_client.protocol.challenge import (
    Challenge,
    compute_challenge_id,
    parse_challenge,
    parse_challenges,
)
from mpp_client.protocol.credential import Credential, parse_credential
from mpp_client.protocol.jcs import canonical_json
from mpp_client.protocol.problem import Problem, parse_problem
from mpp_client.protocol.receipt import Receipt, parse_receipt
from mpp_client.protocol.timestamps import format_timestamp, parse_timestamp

__all__ = [
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
