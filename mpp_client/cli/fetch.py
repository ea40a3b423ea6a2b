"""``mpp fetch URL``: a curl-like request that pays a 402 through the configured wallet.

The body goes to standard output (or ``-o FILE``); what was paid, ``-v`` details and the
progress indicator go to standard error. ``mpp --json fetch`` prints one JSON document instead
(status, headers, body, payment). ``--dry-run`` only quotes. See ``exit_codes`` for the exit
status.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import shlex
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import httpx

from mpp_client.cli.accounts import open_wallet
from mpp_client.cli.exit_codes import ExitCode, exit_code_for
from mpp_client.cli.max_amount import AmountLimit, CappedGuard, parse_amount_limit
from mpp_client.cli.output import Progress, format_money, printable, short
from mpp_client.cli.secret_input import ask_on_terminal, terminal_available
from mpp_client.cli.session_output import session_json, session_line
from mpp_client.driver import payment_of, url_origin
from mpp_client.errors import (
    MppError,
    NoPayableChallenge,
    PayeeChanged,
    PaymentFailed,
    PaymentOutcomeUnknown,
    PaymentRefused,
    PolicyViolation,
)
from mpp_client.flow import Payment, PaymentHooks
from mpp_client.guard import PaymentOptions
from mpp_client.session.base import session_of
from mpp_client.transport import PaymentTransport

if TYPE_CHECKING:
    from mpp_client.cli.invocation import Invocation
    from mpp_client.methods.base import PaymentContext, PaymentProof, Quote
    from mpp_client.protocol import Challenge, Receipt
    from mpp_client.wallet import Wallet

__all__ = ["register", "run"]

# Header values -v never prints: the caller's own credentials and any payment credential.
_REDACTED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "payment-authorization"}
)


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "fetch",
        help="request a URL, paying a 402 through your wallet",
        description=(
            "Request URL like curl; when the server answers 402 Payment Required, pay it "
            "through the configured wallet (within the spend policy) and retry. The body goes "
            "to standard output; what was paid goes to standard error. Use `mpp --json fetch` "
            "for one JSON document (--json after `fetch` is curl's: a JSON request body)."
        ),
    )
    parser.add_argument("url", help="the URL to request")
    parser.add_argument("-X", "--request", metavar="METHOD", help="HTTP method (default GET)")
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="add a request header (repeatable)",
    )
    parser.add_argument(
        "-d",
        "--data",
        action="append",
        metavar="DATA",
        help="request body (POST by default); @FILE reads a file, @- standard input; "
        "repeated -d are joined with &",
    )
    parser.add_argument(
        "--json",
        dest="json_body",
        metavar="DATA",
        help="JSON request body (@FILE, @-); sets Content-Type and Accept to application/json",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write the body to FILE")
    parser.add_argument(
        "-i", "--include", action="store_true", help="print the response status and headers"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show the request, the challenge, a redacted credential summary and the receipt",
    )
    parser.add_argument("-L", "--location", action="store_true", help="follow redirects")
    parser.add_argument(
        "-s", "--silent", action="store_true", help="no progress indicator or payment summary"
    )
    parser.add_argument(
        "--max-time",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="timeout of each HTTP exchange (default 60)",
    )
    parser.add_argument(
        "--max-amount",
        metavar="AMOUNT",
        help="pay at most this much for this request, e.g. 0.05USD, '1.5 pathUSD', '100 sat'",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="only show what would be paid (method, price, payee, expiry, policy verdict)",
    )
    parser.add_argument(
        "--wallet",
        action="append",
        metavar="NAME",
        help="pay with this wallet only (repeatable; default: every configured wallet)",
    )
    parser.add_argument(
        "--accept-payee",
        action="store_true",
        help="when payee pinning refuses a new payee, token or chain for this origin, ask on "
        "the terminal whether to pay and trust it (instead of refusing)",
    )
    parser.set_defaults(run=run, unknown_notice=True)


# --- building the request -----------------------------------------------------------------------


def _read_data(value: str) -> bytes:
    if value == "@-":
        return sys.stdin.buffer.read()
    if value.startswith("@"):
        with open(value[1:], "rb") as handle:
            return handle.read()
    return value.encode()


def _headers(values: Sequence[str]) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for value in values:
        name, sep, rest = value.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"header {value!r} is not 'Name: value'")
        headers.append((name.strip(), rest.strip()))
    return headers


def _request_parts(args: argparse.Namespace) -> tuple[str, list[tuple[str, str]], bytes | None]:
    headers = _headers(args.header)
    body: bytes | None = None
    if args.json_body is not None and args.data:
        raise ValueError("use either -d/--data or --json, not both")
    if args.json_body is not None:
        body = _read_data(args.json_body)
        names = {n.lower() for n, _ in headers}
        if "content-type" not in names:
            headers.append(("Content-Type", "application/json"))
        if "accept" not in names:
            headers.append(("Accept", "application/json"))
    elif args.data:
        body = b"&".join(_read_data(d) for d in args.data)
        if "content-type" not in {n.lower() for n, _ in headers}:
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
    method = (args.request or ("POST" if body is not None else "GET")).upper()
    return method, headers, body


# --- what the user sees while paying ------------------------------------------------------------


class Narrator:
    """Turns payment events into the progress indicator and ``-v`` lines (standard error)."""

    def __init__(self, progress: Progress, *, verbose: bool, stream: IO[str]) -> None:
        self.progress = progress
        self.verbose = verbose
        self.stream = stream
        self.challenges: list[Challenge] = []

    def line(self, text: str) -> None:
        # Every -v line carries server strings (challenge fields, header values, receipt
        # fields): escaped whole, so a value can neither drive the terminal nor start a line.
        if self.verbose:
            with self.progress.pause():
                self.stream.write(printable(text) + "\n")
                self.stream.flush()

    def on_challenges(self, challenges: Sequence[Challenge], context: PaymentContext) -> None:
        self.challenges = list(challenges)
        self.progress.update(f"402 Payment Required: {len(challenges)} offer(s)")
        self.line(f"* 402 Payment Required with {len(challenges)} challenge(s)")
        for index, challenge in enumerate(challenges, 1):
            self.line(f"*   challenge {index}: {describe_challenge(challenge)}")

    def on_quote(self, quote: Quote, context: PaymentContext) -> None:
        payees = ", ".join(short(p.address) for p in quote.payees) or "-"
        self.progress.update(f"paying {format_money(quote.exposure)} to {payees} ({quote.method})")
        self.line(
            f"* chosen: {quote.method}/{quote.intent} challenge {quote.challenge.id}: "
            f"{format_money(quote.amount)} to {payees}"
            + (f", expires {quote.expires.isoformat()}" if quote.expires else "")
        )

    def on_paid(self, quote: Quote, proof: PaymentProof) -> None:
        self.progress.update(f"paid {format_money(quote.amount)}; waiting for the server")

    def on_receipt(self, quote: Quote, receipt: Receipt | None) -> None:
        self.progress.update("payment accepted")

    def on_failure(self, quote: Quote | None, error: MppError) -> None:
        self.progress.update("payment failed")

    def hooks(self) -> PaymentHooks:
        return PaymentHooks(
            on_challenges=self.on_challenges,
            on_quote=self.on_quote,
            on_paid=self.on_paid,
            on_receipt=self.on_receipt,
            on_failure=self.on_failure,
        )


def describe_challenge(challenge: Challenge) -> str:
    """One line about a challenge: id, realm, method/intent, the request's amount fields."""
    data = challenge.request_data
    fields = [
        f"id={challenge.id}",
        f"realm={challenge.realm}",
        f"{challenge.method}/{challenge.intent}",
    ]
    for key in ("amount", "currency", "recipient"):
        if isinstance(data.get(key), (str, int)):
            fields.append(f"{key}={data[key]}")
    if challenge.expires:
        fields.append(f"expires={challenge.expires}")
    if challenge.description:
        fields.append(f"description={challenge.description!r}")
    return " ".join(fields)


def _approval(
    progress: Progress, wallet: Wallet | None = None, *, only_changes: bool = False
) -> Any:
    """Ask on the terminal before payments the policy sends for approval (with ``wallet``:
    naming what changed from the origin's payee pin). ``only_changes`` (``--accept-payee``
    without an approval threshold, where the wallet would ask about every payment): ask only
    when the payment changes the pin, pass the others."""

    def approve(quote: Quote, context: PaymentContext) -> bool:
        payees = ", ".join(p.address for p in quote.payees)
        changed = _pin_changes(wallet, quote, context.origin) if wallet is not None else []
        # Passing without a question is decided by the policy's own pin check, never by the
        # description above: a difference between the two must end in a question.
        if only_changes and wallet is not None and not _pin_refuses(wallet, quote, context):
            return True
        note = f" ({'; '.join(changed)}: trusted from now on if you say yes)" if changed else ""
        # ask_on_terminal stops the spinner while the question is shown (output.prompting).
        return ask_on_terminal(
            printable(f"Pay {format_money(quote.exposure)} to {payees} for {context.url}?{note}")
        )

    return approve


def _pin_changes(wallet: Wallet, quote: Quote, origin: str) -> list[str]:
    """What ``quote`` changes in ``origin``'s payee pin, for the question (empty: nothing, or
    no pin yet). Compared as ``SpendPolicy``'s pin check compares: the chain is the quote's or
    its currency's, payees on the policy's allowlist are never new."""
    pin = wallet.journal.ledger().pin(origin.rstrip("/").lower(), quote.method)
    if pin is None:
        return []
    allowed = wallet.policy.payees or frozenset()
    changes = [
        f"new payee {p.address}"
        for p in quote.payees
        if p.address not in pin.payees and p.address not in allowed
    ]
    if quote.amount.currency.code != pin.token:
        changes.append(f"token {pin.token} -> {quote.amount.currency.code}")
    network = quote.network or quote.amount.currency.network
    if network != pin.network:
        changes.append(f"chain {pin.network} -> {network}")
    return changes


def _pin_refuses(wallet: Wallet, quote: Quote, context: PaymentContext) -> bool:
    """Whether payee pinning alone would refuse ``quote``: the policy's own check, run with
    nothing but pinning (and the payee allowlist, which it consults). Anything else it refuses
    counts as a refusal too, so the caller asks rather than passes."""
    from mpp_client.wallet import SpendPolicy
    from mpp_client.wallet.policy import assess

    probe = SpendPolicy(
        limits=(), require_limit=False, payees=wallet.policy.payees, pin_payees=True
    )
    try:
        assess(probe, quote, context, PaymentOptions(), wallet.journal.ledger(), prices=None)
    except PolicyViolation:
        return True
    return False


def _pin_refusal(error: MppError) -> PayeeChanged | None:
    if isinstance(error, PayeeChanged):
        return error
    if isinstance(error, NoPayableChallenge):
        return next((e for e in error.errors if isinstance(e, PayeeChanged)), None)
    return None


def trust_hint(error: MppError, wallet: Wallet, url: str) -> str | None:
    """For a refusal by payee pinning: the commands that accept the change (``mpp fetch
    --accept-payee`` for this request, ``mpp budget trust`` for good), with the values filled
    in when the wallet's method can price the challenge again (no network, nothing signed)."""
    from mpp_client.cli.budget import trust_command
    from mpp_client.clock import utcnow
    from mpp_client.methods.base import PaymentContext

    refusal = _pin_refusal(error)
    if refusal is None:
        return None
    origin = url_origin(url)
    challenge = refusal.challenge
    command = shlex.join(["mpp", "budget", "trust", origin]) + " --method METHOD --payee ADDRESS"
    if challenge is not None:
        context = PaymentContext(
            origin=origin, url=url, http_method="GET", now=utcnow(wallet.clock)
        )
        method = next((m for m in wallet.methods if m.name == challenge.method), None)
        command = shlex.join(
            ["mpp", "budget", "trust", origin, "--method", challenge.method, "--payee", "ADDRESS"]
        )
        try:
            quote = method.quote(challenge, context) if method is not None else None
        except Exception:  # the hint is a courtesy: a method that cannot price it again
            quote = None  # leaves the placeholders in the command
        if quote is not None:
            pin = wallet.journal.ledger().pin(origin, quote.method)
            known = pin.payees if pin is not None else frozenset()
            new = [p.address for p in quote.payees if p.address not in known]
            network = quote.network or quote.amount.currency.network
            token = quote.amount.currency.code
            values = [quote.method, token, network or "", *new]
            # Every value here is the server's text: trust_command quotes each for the shell,
            # and a value a terminal would act on (a line break, an escape) is never put in a
            # command to copy: the placeholders stay.
            if all(printable(v) == v for v in values):
                command = trust_command(
                    origin,
                    quote.method,
                    new,
                    token=token if pin is not None and token != pin.token else None,
                    network=(
                        network if pin is not None and network and network != pin.network else None
                    ),
                )
    return (
        "If you expected this change, `mpp fetch --accept-payee URL` asks you to confirm it "
        f"and pays, or `{printable(command)}` trusts it for every later payment."
    )


# --- reporting ----------------------------------------------------------------------------------


def payment_data(payment: Payment, wallet: Wallet) -> dict[str, Any]:
    """The JSON form of a ``Payment`` (amounts as integers of base units)."""
    quote = payment.quote
    assert quote is not None  # "unpaid" payments are reported as no payment
    currency = quote.amount.currency
    record = wallet.journal.get(payment.journal_id) if payment.journal_id else None
    receipt = payment.receipt
    return {
        "status": payment.status,
        "method": quote.method,
        "intent": quote.intent,
        "amount": quote.amount.amount,
        "currency": currency.code,
        "decimals": currency.decimals,
        "amount_display": format_money(quote.amount),
        "payees": [{"address": p.address, "amount": p.amount} for p in quote.payees],
        "challenge_id": quote.challenge.id,
        "reference": payment.reference,
        "journal_id": payment.journal_id,
        "fingerprint": record.fingerprint if record else None,
        "receipt": None
        if receipt is None
        else {
            "status": receipt.status,
            "method": receipt.method,
            "reference": receipt.reference,
            "timestamp": receipt.timestamp,
            "challenge_id": receipt.challenge_id,
        },
        "problem": None if payment.problem is None else str(payment.problem.type),
        "error": None if payment.error is None else str(payment.error),
    }


def _error_data(error: MppError, code: ExitCode) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": type(error).__name__,
        "message": str(error),
        "exit_code": int(code),
        # true / false / null (not known: the amount stays held)
        "money_moved": getattr(error, "money_moved", None),
    }
    if isinstance(error, PolicyViolation):
        data["rule"] = error.rule
    for name in ("challenge_id", "reference"):
        if getattr(error, name, None) is not None:
            data[name] = getattr(error, name)
    return data


def network_problem(exc: httpx.HTTPError, url: str, timeout: float) -> str:
    """A sentence naming the host (and the timeout, for a timeout) of a request that failed
    before an answer came; nothing was paid (no answer, no 402)."""
    try:
        target = exc.request.url
        host = target.host + (f":{target.port}" if target.port else "")
    except RuntimeError:  # no request attached
        parts = httpx.URL(url)
        host = parts.host + (f":{parts.port}" if parts.port else "")
    host = printable(host)
    if isinstance(exc, httpx.TimeoutException):
        what = {
            httpx.ConnectTimeout: "connecting",
            httpx.ReadTimeout: "waiting for the answer",
            httpx.WriteTimeout: "sending the request",
            httpx.PoolTimeout: "waiting for a connection",
        }.get(type(exc), "waiting")
        return (
            f"request to {host} timed out after {timeout:g} s {what} (--max-time {timeout:g}); "
            "nothing was paid"
        )
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to {host}: {printable(exc) or type(exc).__name__}; nothing was paid"
    return f"request to {host} failed: {type(exc).__name__}: {printable(exc)}"


def explain(error: MppError) -> str:
    """A human sentence about the error that says what happened to the money."""
    # Reasons quote servers (problem details, refusals naming challenge fields) and backends
    # (RPC and node errors): each is escaped, line breaks included.
    if isinstance(error, PolicyViolation):
        return (
            f"refused by policy ({printable(error.rule)}): {printable(error.reason)}. "
            "Nothing was paid."
        )
    if isinstance(error, PaymentRefused):
        return f"not paid: {printable(error.reason)}. Nothing was paid."
    if isinstance(error, PaymentOutcomeUnknown):
        ref = f" (reference {printable(error.reference)})" if error.reference else ""
        return (
            f"payment outcome unknown: {printable(error.reason)}{ref}. It may have settled; "
            "the amount "
            "stays reserved in the journal. Run `mpp journal reconcile` later."
        )
    if isinstance(error, PaymentFailed):
        if error.money_moved is False:
            moved = "No money moved."
        elif error.money_moved:
            moved = "Money moved: see `mpp journal list`."
        else:
            moved = (
                "Money may have moved; the amount stays held until `mpp journal reconcile` "
                "(or `mpp journal resolve`) settles it."
            )
        return f"payment failed: {printable(error.reason)}. {moved}"
    return f"{type(error).__name__}: {printable(error)}"


def _status_exit(response: httpx.Response, payment: Payment | None) -> ExitCode:
    if payment is not None:
        if payment.status == "unknown":
            return ExitCode.OUTCOME_UNKNOWN
        if payment.status in ("rejected", "denied"):
            return ExitCode.PAYMENT_FAILED
    if response.status_code >= 400:
        return ExitCode.HTTP_ERROR
    return ExitCode.OK


def _header_lines(response: httpx.Response) -> str:
    # Written straight to standard output (-i), so escaped here; the CRLFs are ours.
    lines = [f"{response.http_version} {response.status_code} {printable(response.reason_phrase)}"]
    lines += [
        f"{printable(name)}: {printable(value)}" for name, value in response.headers.multi_items()
    ]
    return "\r\n".join(lines) + "\r\n\r\n"


def _shown(name: str, value: str) -> str:
    return "<redacted>" if name.lower() in _REDACTED_HEADERS else value


def _transport(
    wallet: Wallet, limit: AmountLimit | None, hooks: PaymentHooks | None
) -> PaymentTransport:
    if limit is None:
        return PaymentTransport(wallet=wallet, hooks=hooks)
    return PaymentTransport(
        methods=wallet.methods,
        guard=CappedGuard(wallet, limit),
        prefer=wallet.prefer,
        hooks=hooks,
    )


# --- the command --------------------------------------------------------------------------------


def run(inv: Invocation) -> int:
    args = inv.args
    out = inv.output
    try:
        method, headers, body = _request_parts(args)
        limit = parse_amount_limit(args.max_amount) if args.max_amount else None
    except (ValueError, OSError) as exc:
        out.error(str(exc))
        return ExitCode.USAGE
    inv.warn_test_method()
    if args.dry_run:
        return _dry_run(inv, method, headers, body, limit)
    progress = Progress(enabled=not (out.json or args.silent or out.quiet))
    narrator = Narrator(progress, verbose=args.verbose, stream=out.err)
    wallet = open_wallet(inv.config, wallet_names=args.wallet, approve=None, clock=inv.clock)
    only_changes = (
        args.accept_payee
        and wallet.policy.approve_above is None
        and wallet.policy.on_payee_change == "refuse"
    )
    approve = (
        _approval(progress, wallet, only_changes=only_changes)
        if terminal_available() and not out.json
        else None
    )
    if args.accept_payee:
        if approve is None:
            wallet.close()
            return out.fail(
                "--accept-payee asks on the terminal and there is none (or --json is set): "
                "use `mpp budget trust ORIGIN --method METHOD --payee ADDRESS --yes` instead",
                ExitCode.USAGE,
                "usage",
            )
        # Payee, token and chain changes go to the approval prompt instead of being refused;
        # a yes stores the new pin (SpendPolicy.on_payee_change="approve").
        wallet.policy = wallet.policy.replace(on_payee_change="approve")
    policy = wallet.policy
    policy_needs_approval = policy.approve_above is not None or policy.on_payee_change == "approve"
    if approve is not None and policy_needs_approval:
        wallet.approve = approve
    if not wallet.methods:
        out.warn("no wallet is configured, so a 402 cannot be paid (see `mpp wallet create`)")
    transport = _transport(wallet, limit, narrator.hooks())
    timeout = httpx.Timeout(args.max_time)
    with (
        contextlib.closing(wallet),
        httpx.Client(
            transport=transport, timeout=timeout, follow_redirects=args.location
        ) as client,
    ):
        request = client.build_request(method, args.url, headers=headers, content=body)
        if args.verbose:
            narrator.line(f"> {request.method} {request.url}")
            for name, value in request.headers.multi_items():
                narrator.line(f"> {name}: {_shown(name, value)}")
        progress.start(f"{request.method} {request.url.host}")
        try:
            response = client.send(request, stream=True)
        except MppError as error:
            progress.stop()
            code = exit_code_for(error)
            hint = trust_hint(error, wallet, args.url)
            if out.json:
                data = _error_data(error, code)
                if hint:
                    data["hint"] = hint
                out.result({"url": args.url, "error": data})
            else:
                out.error(explain(error) + (f"\n{hint}" if hint else ""))
            return code
        except httpx.HTTPError as exc:
            progress.stop()
            message = network_problem(exc, args.url, args.max_time)
            if out.json:
                out.result(
                    {
                        "url": args.url,
                        "error": {
                            "type": type(exc).__name__,
                            "message": message,
                            "exit_code": int(ExitCode.ERROR),
                            "money_moved": False,
                        },
                    }
                )
            else:
                out.error(message)
            return ExitCode.ERROR
        try:
            return _deliver(inv, narrator, wallet, response)
        finally:
            response.close()
            progress.stop()


def _deliver(inv: Invocation, narrator: Narrator, wallet: Wallet, response: httpx.Response) -> int:
    args, out = inv.args, inv.output
    payment = payment_of(response)
    unpaid: str | None = None
    if payment is not None and payment.quote is None:
        # The 402 came back untouched: no configured method recognises its challenges.
        unpaid, payment = payment.refusal, None
    code = _status_exit(response, payment) if unpaid is None else ExitCode.NOT_PAYABLE
    body = b"" if out.json and not args.output else None
    sink: IO[bytes] | None = None
    try:
        if args.output:
            sink = open(args.output, "wb")  # noqa: SIM115 - closed below
        chunks = response.iter_bytes()
        first = next(chunks, b"")
        narrator.progress.stop()
        if args.verbose:
            narrator.line(
                f"< {response.http_version} {response.status_code} {response.reason_phrase}"
            )
            for name, value in response.headers.multi_items():
                narrator.line(f"< {name}: {_shown(name, value)}")
            if payment is not None:
                _verbose_payment(narrator, payment, wallet)
        if not out.json and args.include:
            sys.stdout.write(_header_lines(response))
            sys.stdout.flush()
        target: IO[bytes] = sink if sink is not None else sys.stdout.buffer
        last = b"\n"
        metered = session_of(response) is not None  # a session stream: show it as it comes
        for chunk in _chain(first, chunks):
            if body is not None:
                body += chunk
            else:
                target.write(chunk)
                last = chunk[-1:]
                if metered:
                    target.flush()
        if sink is None and body is None and last != b"\n" and sys.stdout.isatty():
            # Keep the shell prompt (and our summary) off the body's last line on a terminal.
            target.write(b"\n")
        target.flush()
    except OSError as exc:
        out.error(f"cannot write the body: {exc.strerror}")
        return ExitCode.ERROR
    finally:
        if sink is not None:
            sink.close()
    if out.json:
        out.result(_fetch_document(args, response, body, payment, wallet, code))
    elif payment is not None and not args.silent:
        out.info(_summary(payment))
        stream_line = session_line(session_of(response), payment)
        if stream_line is not None:
            out.info(stream_line)
    elif (
        (unpaid or code == ExitCode.HTTP_ERROR)
        and response.status_code == 402
        and not (args.silent)
    ):
        out.info(
            "mpp: 402 Payment Required was not paid ("
            + (printable(unpaid) if unpaid else "no MPP challenge this wallet can pay")
            + ")"
        )
    return code


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def _fetch_document(
    args: argparse.Namespace,
    response: httpx.Response,
    body: bytes | None,
    payment: Payment | None,
    wallet: Wallet,
    code: ExitCode,
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "url": str(response.url),
        "status": response.status_code,
        "headers": [[k, v] for k, v in response.headers.multi_items()],
        "payment": None if payment is None else payment_data(payment, wallet),
        "exit_code": int(code),
    }
    session = session_json(session_of(response), payment)
    if session is not None:
        document["session"] = session
    if args.output:
        document["output"] = args.output
    elif body is not None:
        try:
            document["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            document["body_base64"] = base64.b64encode(body).decode()
    return document


def _summary(payment: Payment) -> str:
    quote = payment.quote
    assert quote is not None
    # The payee and the reference come from the server (request, receipt), the error from the
    # server or the backend.
    payees = printable(", ".join(short(p.address) for p in quote.payees) or "-")
    amount = format_money(quote.amount)
    method = printable(quote.method)
    error = printable(payment.error)
    if payment.status == "paid":
        ref = payment.receipt.reference if payment.receipt else payment.reference
        return f"mpp: paid {amount} to {payees} via {method} (reference {printable(ref or '-')})"
    if payment.status == "unknown":
        return (
            f"mpp: payment of {amount} via {method}: outcome unknown ({error}). "
            "It stays reserved; run `mpp journal reconcile` later."
        )
    moved = getattr(payment.error, "money_moved", None)
    if payment.status == "denied":
        moved = True
    if moved is False:
        said = "No money moved."
    elif moved:
        said = "Money moved: see `mpp journal list`."
    else:
        said = (
            "The server may still settle the credential: the amount stays held until "
            "`mpp journal reconcile` proves it void."
        )
    return f"mpp: payment of {amount} via {method} {payment.status}: {error}. " + said


def _verbose_payment(narrator: Narrator, payment: Payment, wallet: Wallet) -> None:
    record = wallet.journal.get(payment.journal_id) if payment.journal_id else None
    fingerprint = record.fingerprint if record and record.fingerprint else "-"
    quote = payment.quote
    assert quote is not None
    narrator.line(
        f"* credential: method={quote.method} challenge={quote.challenge.id} "
        f"fingerprint=sha256:{fingerprint} (the credential itself is never shown)"
    )
    receipt = payment.receipt
    if receipt is None:
        narrator.line(f"* no Payment-Receipt; payment status {payment.status}")
    else:
        narrator.line(
            f"* receipt: status={receipt.status} method={receipt.method} "
            f"reference={receipt.reference} timestamp={receipt.timestamp} "
            f"challenge={receipt.challenge_id or '-'}"
        )
    if payment.journal_id:
        narrator.line(f"* journal entry {payment.journal_id} ({record.state if record else '?'})")


# --- dry run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DryRun:
    """What a dry run found: the HTTP ``status`` of the unpaid request, the chosen ``quote``
    (amounts in base units) and the verdict (``allowed``, else ``refusal`` and ``code``)."""

    url: str
    status: int
    payment_required: bool
    quote: Quote | None
    allowed: bool
    code: ExitCode
    refusal: str | None = None
    rule: str | None = None


def _dry_run(
    inv: Invocation,
    method: str,
    headers: list[tuple[str, str]],
    body: bytes | None,
    limit: AmountLimit | None,
) -> int:
    args, out = inv.args, inv.output
    with contextlib.closing(open_wallet(inv.config, wallet_names=args.wallet)) as wallet:
        transport = _transport(wallet, limit, None)
        with httpx.Client(transport=transport, timeout=httpx.Timeout(args.max_time)) as client:
            request = client.build_request(method, args.url, headers=headers, content=body)
            request.extensions = {**request.extensions, "mpp": PaymentOptions(dry_run=True)}
            try:
                response = client.send(request)
            except PaymentRefused as refused:
                # Nothing could even be priced (no method, expired, unsafe request).
                code = exit_code_for(refused)
                result = DryRun(
                    args.url,
                    402,
                    True,
                    None,
                    False,
                    code,
                    refused.reason,
                    getattr(refused, "rule", None),
                )
            except httpx.HTTPError as exc:
                out.error(f"request failed: {type(exc).__name__}: {printable(exc)}")
                return ExitCode.ERROR
            else:
                result = _dry_run_result(args.url, response)
    out.result(_quote_data(result), _quote_text(result))
    return result.code


def _dry_run_result(url: str, response: httpx.Response) -> DryRun:
    payment = payment_of(response)
    status = response.status_code
    if payment is None:
        code = ExitCode.HTTP_ERROR if status >= 400 else ExitCode.OK
        refusal = "the 402 carries no MPP challenge" if status == 402 else None
        return DryRun(url, status, status == 402, None, False, code, refusal)
    if payment.quote is None:
        return DryRun(url, status, True, None, False, ExitCode.NOT_PAYABLE, payment.refusal)
    if payment.allowed:
        return DryRun(url, status, True, payment.quote, True, ExitCode.OK)
    error = payment.error
    code = exit_code_for(error) if error is not None else ExitCode.NOT_PAYABLE
    return DryRun(
        url, status, True, payment.quote, False, code, payment.refusal, getattr(error, "rule", None)
    )


def _quote_data(result: DryRun) -> dict[str, Any]:
    quote = result.quote
    data: dict[str, Any] = {
        "url": result.url,
        "status": result.status,
        "payment_required": result.payment_required,
        "allowed": result.allowed,
        "refusal": result.refusal,
        "rule": result.rule,
        "exit_code": int(result.code),
        "quote": None,
    }
    if quote is not None:
        currency = quote.amount.currency
        data["quote"] = {
            "method": quote.method,
            "intent": quote.intent,
            "amount": quote.amount.amount,
            "exposure": quote.exposure.amount,
            "currency": currency.code,
            "decimals": currency.decimals,
            "amount_display": format_money(quote.amount),
            "exposure_display": format_money(quote.exposure),
            "payees": [{"address": p.address, "amount": p.amount} for p in quote.payees],
            "expires": None if quote.expires is None else quote.expires.isoformat(),
            "network": quote.network,
            "challenge_id": quote.challenge.id,
            "realm": quote.challenge.realm,
        }
    return data


def _quote_text(result: DryRun) -> str:
    # Method, payees, network, realm and the refusal all come from the server's challenge:
    # every one is escaped (line breaks too) before it joins the lines.
    allowed, rule = result.allowed, result.rule
    refusal = printable(result.refusal)
    url = printable(result.url)
    if not result.payment_required:
        return f"{url}: HTTP {result.status}, no payment required (nothing paid)"
    lines = [f"{url}: 402 Payment Required (dry run: nothing paid)"]
    quote = result.quote
    if quote is not None:
        lines += [
            f"  method   {printable(quote.method)}/{printable(quote.intent)}",
            f"  price    {format_money(quote.amount)}"
            + (
                f" (at most {format_money(quote.exposure)} with fees)"
                if quote.exposure != quote.amount
                else ""
            ),
            "  payee    " + printable(", ".join(p.address for p in quote.payees) or "-"),
            f"  expires  {quote.expires.isoformat() if quote.expires else '-'}",
            f"  network  {printable(quote.network or '-')}",
            f"  realm    {printable(quote.challenge.realm)}",
        ]
    verdict = "allowed by the spend policy" if allowed else f"REFUSED: {refusal}"
    if rule and not allowed:
        verdict += f" (rule {printable(rule)})"
    lines.append(f"  policy   {verdict}")
    return "\n".join(lines)
