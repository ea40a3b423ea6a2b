"""The exit codes of ``mpp``: what happened, and above all what happened to the money.

====  =====================  ===================================================================
code  name                   meaning
====  =====================  ===================================================================
0     OK                     success (for ``fetch``: a 2xx/3xx answer, paid or free)
1     ERROR                  anything else: network error before paying, key store, journal...
2     USAGE                  bad arguments or configuration (``journal resolve``: no such
                             entry, an entry that is not unknown, an empty ``--note``,
                             ``failed`` without ``--yes`` and no terminal)
3     REFUSED_BY_POLICY      the spend policy, an allowlist (a method's chains and tokens
                             included), ``--max-amount``, the approval, or the circuit
                             breaker (``wallet.max_unknown``: too many payments have an
                             unknown outcome; run ``mpp journal reconcile`` or
                             ``mpp journal resolve``) said no; nothing was signed, no money
                             moved
4     NOT_PAYABLE            refused before signing for another reason: no challenge this
                             wallet can pay, expired offer, unsafe request; no money moved
5     PAYMENT_FAILED         a payment was attempted and failed or was rejected; the error says
                             whether money moved (a 403 after paying: it did)
6     OUTCOME_UNKNOWN        a credential left and no clear answer came back: the payment may
                             have settled; see ``mpp journal unknown`` and ``reconcile``
                             (also ``journal reconcile`` when entries stay unknown)
7     HTTP_ERROR             the server answered 4xx/5xx (including an unpaid 402)
====  =====================  ===================================================================
"""

from __future__ import annotations

from enum import IntEnum

from mpp_client.errors import (
    MppError,
    PaymentFailed,
    PaymentOutcomeUnknown,
    PaymentRefused,
    PaymentVetoed,
    PolicyViolation,
    UnresolvedPayments,
)

__all__ = ["ExitCode", "exit_code_for"]


class ExitCode(IntEnum):
    """``mpp``'s documented exit codes (see the module docstring)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    REFUSED_BY_POLICY = 3
    NOT_PAYABLE = 4
    PAYMENT_FAILED = 5
    OUTCOME_UNKNOWN = 6
    HTTP_ERROR = 7


def exit_code_for(error: MppError) -> ExitCode:
    """The exit code for an error raised while paying."""
    if isinstance(error, UnresolvedPayments):
        # The circuit breaker: a refusal before anything is signed, like the policy's (its
        # ``rule`` is ``wallet.max_unknown``); not OUTCOME_UNKNOWN, which is about THIS payment.
        return ExitCode.REFUSED_BY_POLICY
    if isinstance(error, (PolicyViolation, PaymentVetoed)):
        return ExitCode.REFUSED_BY_POLICY
    if isinstance(error, PaymentRefused):
        return ExitCode.NOT_PAYABLE
    if isinstance(error, PaymentOutcomeUnknown):
        return ExitCode.OUTCOME_UNKNOWN
    if isinstance(error, PaymentFailed):
        return ExitCode.PAYMENT_FAILED
    return ExitCode.ERROR
