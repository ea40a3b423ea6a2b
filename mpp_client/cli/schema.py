"""The one JSON schema of ``mpp --json``: every command's document, as a JSON Schema.

Conventions every command follows (docs/cli.md, "JSON output"):

- money is integers of base units with its currency: ``amount`` (int), ``currency`` (the
  currency code: a token address, ``sat``, ``usd``), ``decimals`` (int) and, for people,
  ``amount_display``. A document about one payment carries them flat (a journal entry, a
  payment, a quote: other amounts of the same currency sit beside them as ints, ``exposure``,
  ``max_fee``); any other amount is a ``money`` object with those four fields;
- the same thing has the same name everywhere: ``id`` (a journal entry), ``fingerprint`` (the
  SHA-256 of a credential), ``reference``, ``challenge_id``, ``origin``, ``method``, ``state``,
  ``held``, ``money_moved``, ``exit_code``;
- times are RFC 3339 / ISO 8601 strings with their offset;
- a failure is ``{"error": {"type", "message", "exit_code", ...}}`` (``mpp fetch`` adds
  ``url`` beside ``error``), usage errors included (``type`` ``"usage"``, exit code 2).

``document_schema(command)`` is the schema of one command's document (what it prints on
success or on failure); tests validate every command's output against it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["COMMANDS", "SCHEMA", "document_schema"]

_INT = {"type": "integer"}
_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
_NULL_STR = {"type": ["string", "null"]}
_NULL_BOOL = {"type": ["boolean", "null"]}
_NULL_INT = {"type": ["integer", "null"]}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": sorted(required),
        "additionalProperties": False,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{name}"}


def _nullable(name: str) -> dict[str, Any]:
    return {"anyOf": [_ref(name), {"type": "null"}]}


_MONEY_FIELDS = {"amount": _INT, "currency": _STR, "decimals": _INT, "amount_display": _STR}
_PAYEES = {
    "type": "array",
    "items": _object({"address": _STR, "amount": _INT}),
}

_DEFS: dict[str, Any] = {
    "money": _object(_MONEY_FIELDS),
    "error": _object(
        {"type": _STR, "message": _STR, "exit_code": _INT},
        {
            "money_moved": _NULL_BOOL,
            "rule": _STR,
            "challenge_id": _STR,
            "reference": _STR,
            "hint": _STR,
        },
    ),
    "failure": _object({"error": _ref("error")}, {"url": _STR}),
    "entry": _object(
        {
            "id": _STR,
            "state": _STR,
            "created_at": _STR,
            "updated_at": _STR,
            "call_id": _STR,
            "challenge_id": _STR,
            "realm": _NULL_STR,
            "origin": _STR,
            "url": _STR,
            "http_method": _STR,
            "method": _STR,
            "intent": _STR,
            "amount": _INT,
            "exposure": _INT,
            "currency": _STR,
            "decimals": _INT,
            "currency_network": _NULL_STR,
            "symbol": _NULL_STR,
            "amount_display": _STR,
            "max_fee": _NULL_INT,
            "network": _NULL_STR,
            "payees": _PAYEES,
            "expires": _NULL_STR,
            "label": _NULL_STR,
            "reference": _NULL_STR,
            "fingerprint": _NULL_STR,
            "receipt": {},
            "reason": _NULL_STR,
            "money_moved": _NULL_BOOL,
            "held": _BOOL,
            "payer": _NULL_STR,
            "proof": _NULL_STR,
            "receipt_reference": _NULL_STR,
            "void_after": _NULL_STR,
        }
    ),
    "payment": _object(
        {
            "status": _STR,
            "method": _STR,
            "intent": _STR,
            **_MONEY_FIELDS,
            "payees": _PAYEES,
            "challenge_id": _STR,
            "reference": _NULL_STR,
            "journal_id": _NULL_STR,
            "fingerprint": _NULL_STR,
            "receipt": {
                "anyOf": [
                    {"type": "null"},
                    _object(
                        {
                            "status": _STR,
                            "method": _STR,
                            "reference": _STR,
                            "timestamp": _NULL_STR,
                            "challenge_id": _NULL_STR,
                        }
                    ),
                ]
            },
            "problem": _NULL_STR,
            "error": _NULL_STR,
        }
    ),
    "quote": _object(
        {
            "method": _STR,
            "intent": _STR,
            **_MONEY_FIELDS,
            "exposure": _INT,
            "exposure_display": _STR,
            "payees": _PAYEES,
            "expires": _NULL_STR,
            "network": _NULL_STR,
            "challenge_id": _STR,
            "realm": _STR,
        }
    ),
    "wallet": _object(
        {
            "name": _STR,
            "method": _STR,
            "default": _BOOL,
            "address": _NULL_STR,
            "key": _NULL_STR,
            "settings": {"type": "object"},
        },
        {
            "balances": {
                "type": "array",
                "items": _object({"token": _STR, "symbol": _STR, **_MONEY_FIELDS}),
            }
        },
    ),
    "cap": _object(
        {
            "rule": _STR,
            "per": _STR,
            "cap": _ref("money"),
            "scope": {"type": "object"},
            "used": _nullable("money"),
            "left": _nullable("money"),
        }
    ),
    "group": _object(
        {
            "key": _STR,
            "spent": _ref("money"),
            "held": _ref("money"),
            "payments": _INT,
            "unknown": _INT,
        }
    ),
}

_LIST_OF = {
    "entries": {"type": "array", "items": _ref("entry")},
    "wallets": {"type": "array", "items": _ref("wallet")},
}

#: The document each command prints on success (a failure is ``$defs/failure``).
COMMANDS: dict[str, Any] = {
    "fetch": _object(
        {
            "url": _STR,
            "status": _INT,
            "headers": {"type": "array", "items": {"type": "array", "items": _STR}},
            "payment": _nullable("payment"),
            "exit_code": _INT,
        },
        {
            "body": _STR,
            "body_base64": _STR,
            "output": _STR,
            # A metered session stream: what it cost (the payment's amount is its deposit).
            "session": _object(
                {"spent": _nullable("money"), "complete": _BOOL, "reference": _NULL_STR}
            ),
        },
    ),
    "fetch --dry-run": _object(
        {
            "url": _STR,
            "status": _INT,
            "payment_required": _BOOL,
            "allowed": _BOOL,
            "refusal": _NULL_STR,
            "rule": _NULL_STR,
            "exit_code": _INT,
            "quote": _nullable("quote"),
        }
    ),
    "wallet create": _ref("wallet"),
    "wallet import": _ref("wallet"),
    "wallet show": _ref("wallet"),
    "wallet list": _LIST_OF["wallets"],
    "wallet remove": _object(
        {"removed": _STR, "deleted_secrets": {"type": "array", "items": _STR}}
    ),
    "wallet default": _object({"default": _STR}),
    "budget show": _object(
        {
            "source": _STR,
            "limits": {"type": "array", "items": _ref("cap")},
            "require_limit": _BOOL,
            "origins": {"type": ["array", "null"], "items": _STR},
            "payees": {"type": ["array", "null"], "items": _STR},
            "methods": {"type": ["array", "null"], "items": _STR},
            "pin_payees": _BOOL,
            "on_payee_change": _STR,
            "approve_above": _nullable("money"),
        }
    ),
    "budget set": {
        "anyOf": [
            _object({"changed": {"type": "array", "items": _STR}, "policy": _STR}),
            _object({"reset": _BOOL}),
        ]
    },
    "budget trust": _object(
        {
            "origin": _STR,
            "method": _STR,
            "changed": _BOOL,
            "payees": {"type": "array", "items": _STR},
            "token": _STR,
            "network": _NULL_STR,
        }
    ),
    "journal list": _LIST_OF["entries"],
    "journal unknown": _LIST_OF["entries"],
    "journal show": _ref("entry"),
    "journal reconcile": {
        "type": "array",
        "items": _object(
            {
                "id": _STR,
                "reference": _NULL_STR,
                "outcome": _STR,
                "detail": _NULL_STR,
                "state": _NULL_STR,
                "held": _NULL_BOOL,
            }
        ),
    },
    "journal resolve": _object(
        {
            "id": _STR,
            "previous_state": _STR,
            "state": _STR,
            "proof": _NULL_STR,
            "held": _BOOL,
            "released": _INT,
            "entry": _ref("entry"),
        }
    ),
    "report": _object(
        {
            "generated_at": _STR,
            "timezone": _STR,
            "from": _STR,
            "to": _STR,
            "totals": {
                "type": "array",
                "items": _object({"spent": _ref("money"), "held": _ref("money")}),
            },
            "daily": {
                "type": "array",
                "items": _object({"day": _STR, "spent": _ref("money"), "held": _ref("money")}),
            },
            "origins": {"type": "array", "items": _ref("group")},
            "methods": {"type": "array", "items": _ref("group")},
            "caps": {"type": "array", "items": _ref("cap")},
            "attention": {
                "type": "array",
                "items": _object(
                    {
                        "id": _STR,
                        "created_at": _STR,
                        "state": _STR,
                        "origin": _STR,
                        "method": _STR,
                        "reason": _NULL_STR,
                        **_MONEY_FIELDS,
                    }
                ),
            },
        },
        {"html": _STR},
    ),
    "demo serve": _object(
        {
            "url": _STR,
            "wallet": _STR,
            "address": _STR,
            "rpc_url": _STR,
            "merchant": _STR,
            "partner": _STR,
            "config": _STR,
            "journal": _STR,
            "env": {"type": "object", "additionalProperties": _STR},
        }
    ),
}

#: The whole schema: the shared definitions and every command's document.
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "mpp --json output",
    "$defs": {**_DEFS, **{f"command:{name}": doc for name, doc in COMMANDS.items()}},
}


def document_schema(command: str) -> dict[str, Any]:
    """The JSON Schema of what ``mpp --json COMMAND`` prints: its document or a failure."""
    if command not in COMMANDS:
        raise KeyError(f"no JSON document is described for {command!r}")
    return {
        "$schema": SCHEMA["$schema"],
        "$defs": SCHEMA["$defs"],
        "anyOf": [_ref(f"command:{command}"), _ref("failure")],
    }
