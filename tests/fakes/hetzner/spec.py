"""OpenAPI 3.0.3 -> JSON Schema (draft 4) conversion and cached per-operation validators.

The Hetzner Cloud OpenAPI document (``spec/hcloud-openapi.json``, MIT, see
``spec/hcloud-openapi.LICENSE``) is loaded once per process. Its schemas are converted twice:

* for **responses**: faithfully (``nullable: true`` -> ``anyOf [null, schema]``; OpenAPI-only
  keywords dropped). A response body that does not validate is a bug in the fake.
* for **requests**: the same, plus two deliberate deviations that mirror the real API rather
  than the document:

  - fields documented as "ID or name" (``server_type``, ``image``, ``location`` ... and the
    ``ssh_keys`` items) are typed ``string`` in the document, but the API (and hcloud-python,
    which sends ``id_or_name``) also uses integers there: accept both.
  - unknown fields are rejected (``additionalProperties: false`` on every object schema that
    lists its properties): the real API answers ``invalid_input`` "unknown field name 'x'".

Validators are compiled lazily and cached per (direction, method, path template, status).
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator

SPEC_PATH = Path(__file__).with_name("spec") / "hcloud-openapi.json"

# OpenAPI keywords that are not JSON Schema validation keywords (or that we translate).
_DROP = {
    "example",
    "examples",
    "description",
    "deprecated",
    "nullable",
    "format",
    "title",
    "readOnly",
    "writeOnly",
    "xml",
    "externalDocs",
    "discriminator",
}
_SUBSCHEMA = {"items", "additionalProperties", "not"}
_SUBSCHEMA_LISTS = {"allOf", "anyOf", "oneOf"}
_ID_OR_NAME = re.compile(r"ID or name|IDs \(`integer`\) or names|ID \(`integer`\) or name")


def convert(node: Any, *, request: bool) -> Any:
    """Convert one OpenAPI 3.0 schema object into a draft-4 JSON Schema."""
    if isinstance(node, list):
        return [convert(x, request=request) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: convert(sub, request=request) for name, sub in value.items()}
        elif key in _SUBSCHEMA:
            out[key] = convert(value, request=request) if isinstance(value, dict) else value
        elif key in _SUBSCHEMA_LISTS:
            out[key] = [convert(x, request=request) for x in value]
        elif key in _DROP:
            continue
        else:
            out[key] = value

    if request:
        desc = node.get("description") or ""
        if _ID_OR_NAME.search(desc):
            if out.get("type") == "string":
                out["type"] = ["string", "integer"]
            elif out.get("type") == "array" and isinstance(out.get("items"), dict):
                if out["items"].get("type") == "string":
                    out["items"] = {**out["items"], "type": ["string", "integer"]}
        if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False

    if node.get("nullable") is True:
        return {"anyOf": [{"type": "null"}, out]}
    return out


class OpenAPISpec:
    """The loaded document plus path matching and cached validators."""

    def __init__(self, path: Path = SPEC_PATH):
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
        self.paths: dict[str, dict[str, Any]] = raw["paths"]
        schemas = raw["components"]["schemas"]
        # converted component schemas per direction (request=True/False), and their inlined
        # forms (every $ref replaced by the referenced schema: the document has no cycles, and
        # ref-free schemas validate ~2x faster with jsonschema)
        self._components = {
            True: {n: convert(s, request=True) for n, s in schemas.items()},
            False: {n: convert(s, request=False) for n, s in schemas.items()},
        }
        self._inlined: dict[bool, dict[str, Any]] = {True: {}, False: {}}
        templates = []
        for template in self.paths:
            segments = template.strip("/").split("/")
            pattern = "/".join("[^/]+" if s.startswith("{") else re.escape(s) for s in segments)
            literal = sum(1 for s in segments if not s.startswith("{"))
            templates.append((re.compile("/" + pattern), template, literal))
        # more literal segments first: /servers/{id}/actions/poweron beats /servers/{id}/actions/{action_id}
        templates.sort(key=lambda t: -t[2])
        self._templates = templates
        self._cache: dict[tuple, Draft4Validator | None] = {}
        self._lock = threading.Lock()

    # -- routing -------------------------------------------------------------------------------
    def match(self, path: str) -> str | None:
        for regex, template, _ in self._templates:
            if regex.fullmatch(path):
                return template
        return None

    def operation(self, method: str, template: str) -> dict[str, Any] | None:
        return self.paths.get(template, {}).get(method.lower())

    # -- validators ----------------------------------------------------------------------------
    def _validator(self, key: tuple, schema: dict[str, Any] | None, request: bool) -> Draft4Validator | None:
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            validator = None
            if schema is not None:
                validator = Draft4Validator(self._inline(convert(schema, request=request), request))
            self._cache[key] = validator
            return validator

    def _inline(self, node: Any, request: bool) -> Any:
        if isinstance(node, list):
            return [self._inline(x, request) for x in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if ref is not None:
            name = ref.rsplit("/", 1)[-1]
            done = self._inlined[request]
            if name not in done:
                done[name] = self._inline(self._components[request][name], request)
            return done[name]
        out = {}
        for key, value in node.items():
            if key == "properties":
                out[key] = {n: self._inline(v, request) for n, v in value.items()}
            elif key in ("enum", "required"):
                out[key] = value
            else:
                out[key] = self._inline(value, request)
        return out

    def request_validator(self, method: str, template: str) -> tuple[bool, Draft4Validator | None]:
        """(body required?, validator or None if the operation takes no body)."""
        op = self.operation(method, template) or {}
        body = op.get("requestBody")
        if not body:
            return False, None
        schema = body.get("content", {}).get("application/json", {}).get("schema")
        return bool(body.get("required")), self._validator(("req", method, template), schema, True)

    def response_validator(self, method: str, template: str, status: int) -> tuple[bool, Draft4Validator | None]:
        """(status documented?, validator or None if the documented response has no body)."""
        op = self.operation(method, template) or {}
        responses = op.get("responses", {})
        key = str(status)
        if key not in responses:
            key = f"{str(status)[0]}xx"
            if key not in responses:
                key = "default"
                if key not in responses:
                    return False, None
        schema = responses[key].get("content", {}).get("application/json", {}).get("schema")
        return True, self._validator(("resp", method, template, key), schema, False)


_SPEC: OpenAPISpec | None = None
_SPEC_LOCK = threading.Lock()


def get_spec() -> OpenAPISpec:
    """The process-wide spec instance (loaded on first use, ~0.1 s)."""
    global _SPEC
    with _SPEC_LOCK:
        if _SPEC is None:
            _SPEC = OpenAPISpec()
        return _SPEC


def describe_errors(validator: Draft4Validator, instance: Any) -> list[dict[str, Any]]:
    """Turn jsonschema errors into the API's ``details.fields`` entries."""
    fields: dict[str, list[str]] = {}
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        for name, message in _flatten(error):
            fields.setdefault(name, [])
            if message not in fields[name]:
                fields[name].append(message)
    return [{"name": n, "messages": m} for n, m in fields.items()]


def _flatten(error) -> list[tuple[str, str]]:
    base = ".".join(str(p) for p in error.absolute_path)

    def join(extra: str) -> str:
        return f"{base}.{extra}" if base else extra

    if error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        return [(join(m), "is required") for m in missing] or [(base or "root", "is required")]
    if error.validator == "additionalProperties":
        extras = re.findall(r"'([^']+)'", error.message.split("(")[-1])
        return [(join(e), f"unknown field name '{e}'") for e in extras] or [(base or "root", error.message)]
    if error.validator == "type":
        return [(base or "root", f"must be of type {error.validator_value}")]
    if error.validator in ("anyOf", "oneOf", "allOf") and error.context:
        best = min(error.context, key=lambda e: len(list(e.absolute_path)) * -1)
        return _flatten(best)
    return [(base or "root", error.message)]
