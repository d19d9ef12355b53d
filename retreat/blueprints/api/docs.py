"""Human-readable API reference, rendered on the server from the generated OpenAPI document."""

from __future__ import annotations

import json

from flask import Blueprint, current_app, render_template

bp = Blueprint("api_docs", __name__)

METHOD_ORDER = ("get", "post", "put", "patch", "delete")
ENUM_SHOWN = 20


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _type_label(schema: dict) -> str:
    if "$ref" in schema:
        return _ref_name(schema["$ref"])
    kind = schema.get("type", "object")
    if kind == "array":
        return f"list of {_type_label(schema.get('items', {}))}"
    if schema.get("format"):
        kind = f"{kind} ({schema['format']})"
    if schema.get("enum") and len(schema["enum"]) > ENUM_SHOWN:  # the time zones: named, not listed
        kind += f": one of {len(schema['enum'])} names (the OpenAPI document lists them)"
    elif schema.get("enum"):
        kind += ": " + " | ".join(str(v) for v in schema["enum"])
    return kind


def _resolve(spec: dict, obj: dict) -> dict:
    while "$ref" in obj:
        section, name = obj["$ref"].split("/")[-2:]
        obj = spec.get("components", {}).get(section, {}).get(name, {})
    return obj


def _schema_of(spec: dict, content: dict | None) -> str | None:
    body = (content or {}).get("application/json", {}).get("schema")
    return _type_label(body) if body else None


def _example_of(content: dict | None) -> str | None:
    """The JSON example of a body, pretty-printed (the document's ``example``), or None."""
    body = (content or {}).get("application/json", {})
    if "example" in body:
        return json.dumps(body["example"], indent=2)
    examples = body.get("examples") or {}
    for ex in examples.values():
        if isinstance(ex, dict) and "value" in ex:
            return json.dumps(ex["value"], indent=2)
    return None


def _fields(schema: dict) -> list[dict]:
    required = set(schema.get("required", []))
    return [{"name": name, "type": _type_label(prop), "required": name in required,
             "description": prop.get("description", ""),
             "read_only": prop.get("readOnly", False)}
            for name, prop in schema.get("properties", {}).items()]


def build_reference(spec: dict) -> dict:
    operations = []
    for path, item in spec.get("paths", {}).items():
        for method in METHOD_ORDER:
            op = item.get(method)
            if op is None:
                continue
            params = [_resolve(spec, p) for p in item.get("parameters", []) + op.get("parameters", [])]
            body = _resolve(spec, op.get("requestBody", {})) if op.get("requestBody") else None
            responses = []
            for code, resp in sorted(op.get("responses", {}).items()):
                resp = _resolve(spec, resp)
                responses.append({"code": code, "description": resp.get("description", ""),
                                  "schema": _schema_of(spec, resp.get("content")),
                                  "example": _example_of(resp.get("content"))})
            operations.append({
                "id": f"{method}-{path}".replace("/", "-").replace("{", "").replace("}", "").strip("-"),
                "method": method.upper(), "path": path, "summary": op.get("summary", ""),
                "description": op.get("description", ""), "tags": op.get("tags", []),
                "auth": bool(op.get("security", spec.get("security"))),
                "parameters": [{"name": p.get("name"), "in": p.get("in"), "required": p.get("required", False),
                                "type": _type_label(p.get("schema", {})), "description": p.get("description", "")}
                               for p in params],
                "body": _schema_of(spec, body.get("content")) if body else None,
                "body_example": _example_of(body.get("content")) if body else None,
                "scope": op.get("x-required-scope"),
                "responses": responses,
            })
    schemas = [{"name": name, "fields": _fields(s), "description": s.get("description", "")}
               for name, s in sorted(spec.get("components", {}).get("schemas", {}).items())]
    return {"info": spec.get("info", {}), "operations": operations, "schemas": schemas,
            "security_schemes": spec.get("components", {}).get("securitySchemes", {})}


@bp.get("/api/v1/docs")
def docs():
    spec = current_app.extensions["retreat_openapi"].to_dict()
    return render_template("api/docs.html", ref=build_reference(spec))
