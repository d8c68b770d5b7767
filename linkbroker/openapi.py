"""The OpenAPI 3 document of the management API, served at /api/openapi.json."""

from typing import Any

from linkbroker import __version__, slugs
from linkbroker.lifecycle import MAX_CLICKS

_SLUG = {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,64}$"}
_ERROR = {"$ref": "#/components/schemas/Error"}
_LINK = {"$ref": "#/components/schemas/Link"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def _errors(*statuses: int) -> dict[str, Any]:
    described = {
        400: "The request is malformed: not JSON, a missing or mistyped field.",
        401: "The token is missing, wrong or revoked.",
        404: "No link has this slug.",
        409: "The slug is taken, by a link or by a deleted link's tombstone.",
        413: "The body is too large.",
        415: "The body is not sent as application/json.",
        422: "The destination, slug or a term (status, expiry, limit, fallback) "
        "is refused, or there is nothing to revert to.",
        429: "Too many writes; Retry-After says when to try again.",
    }
    return {str(status): _json(_ERROR, described[status]) for status in statuses}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


def _operation(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, **extra, "responses": responses}


def _slug_parameter() -> dict[str, Any]:
    return {"name": "slug", "in": "path", "required": True, "schema": _SLUG}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema}


def _collection_paths() -> dict[str, Any]:
    shorten = _operation(
        "Make a short link",
        {
            "201": _json(_ref("ShortenResponse"), "Made."),
            **_errors(400, 401, 409, 413, 415, 422, 429),
        },
        requestBody=_body("ShortenRequest"),
    )
    listing = _operation(
        "List links, newest first",
        {"200": _json(_ref("LinkPage"), "A page."), **_errors(400, 401)},
        parameters=[
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
            _query("offset", {"type": "integer", "minimum": 0}),
        ],
    )
    document = _operation(
        "This document",
        {"200": _json({"type": "object"}, "The document."), **_errors(401)},
    )
    return {
        "/api/shorten": {"post": shorten},
        "/api/links": {"get": listing},
        "/api/openapi.json": {"get": document},
    }


def _link_paths() -> dict[str, Any]:
    one_link = {
        "parameters": [_slug_parameter()],
        "get": _operation(
            "One link with its click counts",
            {"200": _json(_LINK, "The link."), **_errors(401, 404)},
        ),
        "patch": _operation(
            "Change a link's destination",
            {
                "200": _json(_LINK, "Changed."),
                **_errors(400, 401, 404, 413, 415, 422, 429),
            },
            requestBody=_body("Edit"),
        ),
        "delete": _operation(
            "Delete a link, keeping a tombstone; with purge=true remove it all",
            {"204": {"description": "Deleted."}, **_errors(400, 401, 404, 429)},
            parameters=[_query("purge", {"type": "boolean"})],
        ),
    }
    return {"/api/links/{slug}": one_link, **_link_part_paths()}


def _on_link(method: str, operation: dict[str, Any]) -> dict[str, Any]:
    return {"parameters": [_slug_parameter()], method: operation}


def _link_part_paths() -> dict[str, Any]:
    image = {"schema": {"type": "string"}}
    qr = _operation(
        "A QR code of the short URL, as SVG (the default) or PNG",
        {
            "200": {
                "description": "The image.",
                "content": {"image/svg+xml": image, "image/png": image},
            },
            **_errors(400, 401, 404),
        },
        parameters=[_query("format", {"type": "string", "enum": ["svg", "png"]})],
    )
    return {
        "/api/links/{slug}/stats": _on_link(
            "get",
            _operation(
                "A link's clicks per day, referrers and bot reasons",
                {"200": _json(_ref("Stats"), "The stats."), **_errors(401, 404)},
            ),
        ),
        "/api/links/{slug}/history": _on_link(
            "get",
            _operation(
                "Every destination a link has had",
                {"200": _json(_ref("History"), "The history."), **_errors(401, 404)},
            ),
        ),
        "/api/links/{slug}/revert": _on_link(
            "post",
            _operation(
                "Go back to the previous destination",
                {"200": _json(_LINK, "Reverted."), **_errors(401, 404, 422, 429)},
            ),
        ),
        "/api/links/{slug}/qr": _on_link("get", qr),
    }


_COUNT = {"type": "integer", "minimum": 0}
_STATUS = {"type": "integer", "enum": [301, 302, 307, 308]}
_MAYBE_TEXT = {"type": ["string", "null"]}


def _link_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["slug", "destination", "created_at", "clicks", "bot_clicks"],
        "properties": {
            "slug": {"type": "string"},
            "destination": {"type": "string"},
            "created_at": {"type": "string"},
            "clicks": _COUNT,
            "bot_clicks": _COUNT,
            "status": _STATUS,
            "state": {
                "type": "string",
                "enum": ["active", "disabled", "expired", "exhausted", "deleted"],
            },
            "expires_at": _MAYBE_TEXT,
            "max_clicks": {"type": ["integer", "null"]},
            "limit_used": _COUNT,
            "fallback": _MAYBE_TEXT,
            "disabled_at": _MAYBE_TEXT,
            "deleted_at": _MAYBE_TEXT,
        },
    }


def _history_schema() -> dict[str, Any]:
    change = {
        "type": "object",
        "required": ["destination", "status", "changed_at", "changed_by"],
        "properties": {
            "id": _COUNT,
            "destination": {"type": "string"},
            "status": _STATUS,
            "changed_at": {"type": "string"},
            "changed_by": {"type": "string"},
            "reverted_at": _MAYBE_TEXT,
            "reverted_by": _MAYBE_TEXT,
        },
    }
    return {
        "type": "object",
        "required": ["slug", "history"],
        "properties": {
            "slug": {"type": "string"},
            "history": {"type": "array", "items": change},
        },
    }


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["success", "error"],
        "properties": {
            "success": {"type": "boolean", "enum": [False]},
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "field": {"type": "string"},
                },
            },
        },
    }


def _request_schemas() -> dict[str, Any]:
    destination = {"type": "string", "maxLength": 2048}
    terms: dict[str, dict[str, Any]] = {
        "status": _STATUS,
        "expiresIn": {
            "type": "string",
            "description": "A duration: 30m, 12h, 7d, 2w, 1d12h.",
        },
        "expiresAt": {
            "type": "string",
            "description": "An ISO 8601 date or time; UTC unless it has an offset.",
        },
        "maxClicks": {"type": "integer", "minimum": 1, "maximum": MAX_CLICKS},
        "fallback": destination,
    }
    return {
        "ShortenRequest": {
            "type": "object",
            "required": ["destination"],
            "additionalProperties": False,
            "properties": {
                "destination": destination,
                "slug": _SLUG,
                "reclaim": {"type": "boolean"},
                **terms,
            },
        },
        "Edit": {
            "type": "object",
            "description": "Fields left out stay as they are; null removes an "
            "expiry, a click limit or a fallback. A new maxClicks counts from zero.",
            "additionalProperties": False,
            "properties": {
                "destination": destination,
                "disabled": {"type": "boolean"},
                **terms,
                "expiresIn": {**terms["expiresIn"], "type": ["string", "null"]},
                "expiresAt": {**terms["expiresAt"], "type": ["string", "null"]},
                "maxClicks": {
                    "type": ["integer", "null"],
                    "minimum": 1,
                    "maximum": MAX_CLICKS,
                },
                "fallback": {**destination, "type": ["string", "null"]},
            },
        },
    }


def _response_schemas() -> dict[str, Any]:
    counted = {
        "type": "array",
        "items": {"type": "object", "properties": {"clicks": _COUNT}},
    }
    text = {"type": "string"}
    return {
        "ShortenResponse": {
            "type": "object",
            "required": ["success", "shortUrl", "slug", "destination"],
            "properties": {
                "success": {"type": "boolean", "enum": [True]},
                "shortUrl": text,
                "slug": text,
                "destination": text,
                "warning": text,
            },
        },
        "History": _history_schema(),
        "LinkPage": {
            "type": "object",
            "required": ["links", "limit", "offset", "next_offset"],
            "properties": {
                "links": {"type": "array", "items": _link_schema()},
                "limit": _COUNT,
                "offset": _COUNT,
                "next_offset": {"type": ["integer", "null"]},
            },
        },
        "Stats": {
            "allOf": [
                _link_schema(),
                {
                    "type": "object",
                    "required": ["daily", "top_referrers", "bot_reasons"],
                    "properties": {
                        "daily": counted,
                        "top_referrers": counted,
                        "bot_reasons": counted,
                    },
                },
            ]
        },
    }


def _schemas() -> dict[str, Any]:
    return {
        "Error": _error_schema(),
        "Link": _link_schema(),
        **_request_schemas(),
        **_response_schemas(),
    }


def document(base_url: str) -> dict[str, Any]:
    """Return the OpenAPI document for a server whose short links start `base_url`."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "linkbroker",
            "version": __version__,
            "description": "Manage short links. Reserved slugs: "
            + ", ".join(sorted(slugs.RESERVED)),
        },
        "servers": [{"url": base_url}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(),
        },
        "paths": {**_collection_paths(), **_link_paths()},
    }
