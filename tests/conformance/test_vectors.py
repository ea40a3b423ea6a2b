"""Every scenario of the client-relevant shared conformance vectors, through the adapter.

The adapter runs as a subprocess per operation, exactly as the suite's vector runner starts it
(the ABI has no batch or long-lived mode), from the command in ``adapter.json``. Scenarios run
in parallel threads; each scenario's calls stay in order. Comparison follows the official
runner: parse results are compared semantically with the scenario's ``object``; format results
are re-parsed by the adapter's own parser and compared the same way; base64url and challenge
ids are compared exactly. Every response is validated against ``adapter-response.schema.json``
and every success value against the operation's ``successRef`` schema.

Scenarios restricted upstream to other SDKs (``adapters: ["rust"]``) run too: mpp_client
supports what they test (the ``header`` parameter).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MPP_SHARED_DIR", ROOT.parent / "shared"))
SUITE = SHARED / "protocol" / "vectors" / "conformance"
MANIFEST_PATH = Path(__file__).with_name("adapter.json")

# vector file -> (parse op, format op)
CODEC_VECTORS = {
    "www-authenticate": ("challenge.parse", "challenge.format"),
    "authorization": ("credential.parse", "credential.format"),
    "receipt": ("receipt.parse", "receipt.format"),
    "base64url": ("base64url.decode", "base64url.encode"),
}
GENERATE_VECTORS = {"challenge-id": "challenge.id"}
ALL_VECTORS = (*CODEC_VECTORS, *GENERATE_VECTORS)


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _suite_available() -> bool:
    return (SUITE / "vectors").is_dir()


if not _suite_available():
    if os.environ.get("MPP_ALLOW_SKIP") == "1":
        pytest.skip(f"conformance vectors not found at {SUITE}", allow_module_level=True)
    raise RuntimeError(f"conformance vectors not found at {SUITE} (set MPP_SHARED_DIR)")


# --- schemas ------------------------------------------------------------------------------------


def _protocol_schema() -> dict[str, Any]:
    schema: dict[str, Any] = copy.deepcopy(_load(SUITE / "schemas" / "protocol.schema.json"))
    # The schema predates the SDK-only `header` challenge parameter (protocol README §21.5),
    # which the authorization and challenge-id vectors already use.
    for name in ("Challenge", "ChallengeIdInput"):
        schema["$defs"][name]["properties"]["header"] = {"type": "string"}
    return schema


def _registry() -> Registry:
    resources = []
    for name in ("adapter-response.schema.json", "adapter-manifest.schema.json"):
        document = _load(SUITE / "schemas" / name)
        resources.append((document["$id"], Resource.from_contents(document)))
    protocol = _protocol_schema()
    resources.append((protocol["$id"], Resource.from_contents(protocol)))
    return Registry().with_resources(resources)


REGISTRY = _registry()
PROTOCOL_ID = _protocol_schema()["$id"]
OPERATIONS = _load(SUITE / "operations.json")["operations"]


def _validator(ref: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": ref}, registry=REGISTRY)


RESPONSE_VALIDATOR = _validator(_load(SUITE / "schemas" / "adapter-response.schema.json")["$id"])
SUCCESS_VALIDATORS = {
    op: _validator(PROTOCOL_ID + "#" + spec["successRef"].split("#", 1)[1])
    for op, spec in OPERATIONS.items()
}


# --- the adapter as a subprocess ----------------------------------------------------------------


def _command() -> tuple[list[str], Path]:
    manifest = _load(MANIFEST_PATH)
    command = list(manifest["command"])
    if command[0] in ("python", "python3"):
        # "the current python": the interpreter running the tests (the project venv).
        command[0] = sys.executable
    return command, ROOT / manifest.get("cwd", ".")


COMMAND, CWD = _command()


class Adapter:
    """Calls the adapter and records every schema or protocol problem it sees."""

    def __init__(self, vector: str, case: str) -> None:
        self.vector = vector
        self.case = case
        self.problems: list[str] = []
        self.calls = 0

    def call(self, op: str, value: Any, *, max_ms: int | None = None) -> dict[str, Any]:
        request = {
            "schema": 1,
            "op": op,
            "input": value,
            "context": {"vectorName": self.vector, "caseName": self.case},
        }
        started = time.perf_counter()
        completed = subprocess.run(
            COMMAND,
            cwd=CWD,
            input=json.dumps(request).encode("utf-8"),
            capture_output=True,
            timeout=30,
            check=False,
        )
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.calls += 1
        if completed.returncode != 0:
            self.problems.append(f"{op}: adapter exited {completed.returncode}")
        lines = completed.stdout.decode("utf-8").strip().splitlines()
        if len(lines) != 1:
            self.problems.append(f"{op}: adapter printed {len(lines)} lines, expected 1")
            return {"ok": False, "error": {"type": "unknown_error", "message": "no response"}}
        response: dict[str, Any] = json.loads(lines[0])
        for error in RESPONSE_VALIDATOR.iter_errors(response):
            self.problems.append(f"{op}: response breaks the schema: {error.message}")
        if response.get("ok") is True:
            for error in SUCCESS_VALIDATORS[op].iter_errors(response["value"]):
                self.problems.append(f"{op}: value breaks {OPERATIONS[op]['successRef']}: {error}")
        if max_ms is not None and elapsed_ms > max_ms:
            self.problems.append(f"{op}: took {elapsed_ms:.0f} ms, limit {max_ms} ms")
        return response

    def expect_value(self, what: str, response: dict[str, Any], expected: Any) -> Any:
        if response.get("ok") is not True:
            self.problems.append(f"{what}: expected success, got {response.get('error')}")
            return None
        if response["value"] != expected:
            self.problems.append(f"{what}: got {response['value']!r}, expected {expected!r}")
        return response["value"]

    def expect_error(self, what: str, response: dict[str, Any], error_type: str) -> None:
        if response.get("ok") is not False:
            self.problems.append(f"{what}: expected {error_type}, got success {response}")
        elif response["error"]["type"] != error_type:
            self.problems.append(f"{what}: expected {error_type}, got {response['error']['type']}")


def _wire(scenario: dict[str, Any]) -> str:
    wire = scenario["wire"]
    if isinstance(wire, str):
        return wire
    return str(wire["prefix"] + wire["repeat"] * wire["count"] + wire.get("suffix", ""))


def _max_ms(scenario: dict[str, Any]) -> int | None:
    by_adapter = scenario.get("maxDurationMsByAdapter", {})
    limit = by_adapter.get(_load(MANIFEST_PATH)["name"], scenario.get("maxDurationMs"))
    return int(limit) if limit is not None else None


def _run_codec(vector: str, scenario: dict[str, Any]) -> Adapter:
    parse_op, format_op = CODEC_VECTORS[vector]
    adapter = Adapter(vector, scenario["name"])
    tests = scenario.get("tests", {})
    limit = _max_ms(scenario)
    is_base64 = vector == "base64url"

    def parse_input(text: str) -> dict[str, str]:
        return {"text": text} if is_base64 else {"header": text}

    def parsed(text: str) -> Any:
        return {"text": text} if is_base64 else scenario["object"]

    wire: str = ""
    if is_base64:
        wire = scenario.get("encoded", "")
    elif "wire" in scenario:
        wire = _wire(scenario)
    source = {"text": scenario.get("decoded")} if is_base64 else scenario.get("object")

    expectation = tests.get("parse")
    if expectation is not None:
        response = adapter.call(parse_op, parse_input(wire), max_ms=limit)
        if expectation is True:
            adapter.expect_value("parse", response, parsed(scenario.get("decoded", "")))
        else:
            adapter.expect_error("parse", response, expectation["error_type"])

    expectation = tests.get("format")
    if expectation is not None:
        response = adapter.call(format_op, source, max_ms=limit)
        if expectation is not True:
            adapter.expect_error("format", response, expectation["error_type"])
        elif is_base64:
            adapter.expect_value("format", response, {"text": scenario["encoded"]})
        elif response.get("ok") is True:
            again = adapter.call(parse_op, response["value"])
            adapter.expect_value("format then parse", again, scenario["object"])
        else:
            adapter.problems.append(f"format: expected success, got {response.get('error')}")

    if tests.get("roundtrip"):
        if is_base64:
            encoded = adapter.call(format_op, source)
            if adapter.expect_value("roundtrip encode", encoded, {"text": scenario["encoded"]}):
                decoded = adapter.call(parse_op, encoded["value"])
                adapter.expect_value("roundtrip decode", decoded, source)
        else:
            first = adapter.call(parse_op, parse_input(wire))
            value = adapter.expect_value("roundtrip parse", first, scenario["object"])
            if value is not None:
                formatted = adapter.call(format_op, value)
                if formatted.get("ok") is True:
                    again = adapter.call(parse_op, formatted["value"])
                    adapter.expect_value("roundtrip reparse", again, scenario["object"])
                else:
                    adapter.problems.append(f"roundtrip format failed: {formatted.get('error')}")
    if adapter.calls == 0:
        adapter.problems.append("scenario has no test this runner understands")
    return adapter


def _run_generate(vector: str, scenario: dict[str, Any]) -> Adapter:
    adapter = Adapter(vector, scenario["name"])
    response = adapter.call(GENERATE_VECTORS[vector], scenario["input"], max_ms=_max_ms(scenario))
    expectation = scenario.get("tests", {}).get("generate", True)
    if expectation is True:
        adapter.expect_value("generate", response, {"id": scenario["expected"]})
    else:
        adapter.expect_error("generate", response, expectation["error_type"])
    return adapter


def _cases() -> Iterator[tuple[str, dict[str, Any]]]:
    for vector in ALL_VECTORS:
        for scenario in _load(SUITE / "vectors" / f"{vector}.json")["scenarios"]:
            yield vector, scenario


CASES = list(_cases())


@pytest.fixture(scope="module")
def results() -> dict[str, Adapter]:
    """Run every scenario once, four at a time (each scenario's calls stay sequential)."""

    def run(case: tuple[str, dict[str, Any]]) -> Adapter:
        vector, scenario = case
        if vector in GENERATE_VECTORS:
            return _run_generate(vector, scenario)
        return _run_codec(vector, scenario)

    with ThreadPoolExecutor(max_workers=4) as pool:
        done = list(pool.map(run, CASES))
    return {f"{a.vector}::{a.case}": a for a in done}


@pytest.mark.parametrize("case_id", [f"{vector}::{scenario['name']}" for vector, scenario in CASES])
def test_scenario_passes_through_the_adapter(results: dict[str, Adapter], case_id: str) -> None:
    adapter = results[case_id]
    assert adapter.calls > 0
    assert adapter.problems == []


def test_every_client_vector_file_contributes_scenarios() -> None:
    counts = {vector: sum(1 for v, _ in CASES if v == vector) for vector in ALL_VECTORS}
    assert all(count > 0 for count in counts.values()), counts


def test_manifest_follows_the_manifest_schema() -> None:
    validator = _validator(_load(SUITE / "schemas" / "adapter-manifest.schema.json")["$id"])
    manifest = _load(MANIFEST_PATH)
    assert list(validator.iter_errors(manifest)) == []
    assert (ROOT / manifest["command"][1]).is_file()


def test_unsupported_operation_is_reported_with_its_error_type() -> None:
    adapter = Adapter("none", "unsupported")
    response = adapter.call("server.verify", {})
    adapter.expect_error("server.verify", response, "unsupported_operation")
    assert adapter.problems == []


def test_http_payment_request_refuses_modes_that_tamper_with_credentials() -> None:
    adapter = Adapter("none", "http")
    response = adapter.call(
        "http.payment_request",
        {
            "url": "http://127.0.0.1:9/",
            "method": "GET",
            "headers": {},
            "body": None,
            "payment": {"payload": {}},
            "mode": "invalid_payload",
        },
    )
    assert adapter.problems == []
    assert response["ok"] is False
    assert response["error"]["type"] == "unsupported_operation"
