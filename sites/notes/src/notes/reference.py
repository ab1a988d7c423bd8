"""The notes site's generated documentation blocks: its settings and its REST API.

flaskstack's ``python -m flaskstack.readme`` finds :data:`BLOCKS` through the entry point
``flaskstack.docs`` (this distribution's pyproject.toml) and writes them into docs/.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from typing import Any

from . import config


def settings_table() -> str:
    return config.markdown_table()


def spec() -> dict[str, Any]:
    """The OpenAPI document the site serves at /openapi.json, made without a server."""
    from . import create_app

    with tempfile.TemporaryDirectory() as data:
        app = create_app({"NOTES_DATA_DIR": data, "SECRET_KEY": "reference",
                          "SQLALCHEMY_DATABASE_URI": f"sqlite:///{data}/notes.db"})
        with app.test_client() as client, warnings.catch_warnings():
            # apispec warns that a schema used by several operations is added twice
            warnings.simplefilter("ignore", UserWarning)
            document: dict[str, Any] = client.get("/openapi.json").get_json()
    return document


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "/")


def _schema_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if schema.get("type") == "array":
        return f"array of {_schema_name(schema.get('items', {}))}"
    return str(schema.get("type", "object"))


def _fields(schema: dict[str, Any], schemas: dict[str, Any]) -> list[str]:
    if "$ref" in schema:
        schema = schemas[_schema_name(schema)]
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        kind = _schema_name(prop) if "$ref" in prop or "items" in prop else prop.get("type", "")
        if isinstance(kind, list):
            kind = " or ".join(kind)
        rows.append(f"| `{name}` | {kind} | {'yes' if name in required else ''} "
                    f"| {_cell(prop.get('description', ''))} |")
    return rows


def api_reference() -> str:
    """Every operation of the spec: parameters, body fields and answers."""
    document = spec()
    schemas = document.get("components", {}).get("schemas", {})
    out: list[str] = []
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            out.append(f"### `{method.upper()} {path}`\n")
            summary = op.get("summary", "")
            description = " ".join(op.get("description", "").split())
            out.append(f"{summary}. {description}".strip().replace("..", ".") + "\n")
            token = op.get("security")
            if token:
                needs = "optional" if {} in token else "required"
                out.append(f"Token: {needs}.\n")
            params = op.get("parameters", [])
            if params:
                out.append("| parameter | in | type | what |\n| --- | --- | --- | --- |")
                out += [f"| `{p['name']}` | {p['in']} | "
                        f"{_schema_name(p.get('schema', {}))} "
                        f"| {_cell(p.get('description', ''))} |" for p in params]
                out.append("")
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                out.append("| body field | type | required | what |\n| --- | --- | --- | --- |")
                out += _fields(body.get("schema", {}), schemas)
                out.append("")
            out.append("| answer | what |\n| --- | --- |")
            out += [f"| {code} | {_cell(r.get('description', ''))} |"
                    for code, r in op["responses"].items()]
            out.append("")
    out.append("### Objects\n")
    for name, schema in schemas.items():
        if (name.startswith(("HTTPError", "ValidationError")) or not schema.get("properties")
                or (name.rstrip("0123456789") in schemas and name[-1].isdigit())):
            continue  # the errors are listed by code; NoteOut1 is apispec's copy of NoteOut
        out.append(f"`{name}`:\n\n| field | type | required | what |\n| --- | --- | --- | --- |")
        out += _fields(schema, schemas)
        out.append("")
    return "\n".join(out).rstrip()


BLOCKS: dict[str, Callable[[], str]] = {
    "notes-settings": settings_table,
    "notes-api": api_reference,
}
