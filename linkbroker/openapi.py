"""The OpenAPI 3 document of the management API, served at /api/openapi.json."""

from typing import Any

from linkbroker import __version__, slugs

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
        409: "The slug is taken.",
        413: "The body is too large.",
        415: "The body is not sent as application/json.",
        422: "The destination or slug is refused by the policy.",
        429: "Too many writes; Retry-After says when to try again.",
    }
    return {str(status): _json(_ERROR, described[status]) for status in statuses}


def _slug_parameter() -> dict[str, Any]:
    return {"name": "slug", "in": "path", "required": True, "schema": _SLUG}


def _paths() -> dict[str, Any]:
    one_link = {"parameters": [_slug_parameter()]}
    body = {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Edit"}}
        },
    }
    return {
        "/api/shorten": {
            "post": {
                "summary": "Make a short link",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ShortenRequest"}
                        }
                    },
                },
                "responses": {
                    "201": _json(
                        {"$ref": "#/components/schemas/ShortenResponse"}, "Made."
                    ),
                    **_errors(400, 401, 409, 413, 415, 422, 429),
                },
            }
        },
        "/api/links": {
            "get": {
                "summary": "List links, newest first",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                    {
                        "name": "offset",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0},
                    },
                ],
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/LinkPage"}, "A page."),
                    **_errors(400, 401),
                },
            }
        },
        "/api/links/{slug}": {
            **one_link,
            "get": {
                "summary": "One link with its click counts",
                "responses": {"200": _json(_LINK, "The link."), **_errors(401, 404)},
            },
            "patch": {
                "summary": "Change a link's destination",
                "requestBody": body,
                "responses": {
                    "200": _json(_LINK, "Changed."),
                    **_errors(400, 401, 404, 413, 415, 422, 429),
                },
            },
            "delete": {
                "summary": "Delete a link",
                "responses": {
                    "204": {"description": "Deleted."},
                    **_errors(401, 404, 429),
                },
            },
        },
        "/api/links/{slug}/stats": {
            **one_link,
            "get": {
                "summary": "A link's clicks per day, referrers and bot reasons",
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Stats"}, "The stats."),
                    **_errors(401, 404),
                },
            },
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {
                    "200": _json({"type": "object"}, "The document."),
                    **_errors(401),
                },
            }
        },
    }


def _schemas() -> dict[str, Any]:
    count = {"type": "integer", "minimum": 0}
    link = {
        "type": "object",
        "required": ["slug", "destination", "created_at", "clicks", "bot_clicks"],
        "properties": {
            "slug": {"type": "string"},
            "destination": {"type": "string"},
            "created_at": {"type": "string"},
            "clicks": count,
            "bot_clicks": count,
        },
    }
    counted = {
        "type": "array",
        "items": {"type": "object", "properties": {"clicks": count}},
    }
    return {
        "Error": {
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
                    },
                },
            },
        },
        "Link": link,
        "ShortenRequest": {
            "type": "object",
            "required": ["destination"],
            "additionalProperties": False,
            "properties": {
                "destination": {"type": "string", "maxLength": 2048},
                "slug": _SLUG,
            },
        },
        "ShortenResponse": {
            "type": "object",
            "required": ["success", "shortUrl", "slug", "destination"],
            "properties": {
                "success": {"type": "boolean", "enum": [True]},
                "shortUrl": {"type": "string"},
                "slug": {"type": "string"},
                "destination": {"type": "string"},
            },
        },
        "Edit": {
            "type": "object",
            "required": ["destination"],
            "additionalProperties": False,
            "properties": {"destination": {"type": "string", "maxLength": 2048}},
        },
        "LinkPage": {
            "type": "object",
            "required": ["links", "limit", "offset", "next_offset"],
            "properties": {
                "links": {"type": "array", "items": link},
                "limit": count,
                "offset": count,
                "next_offset": {"type": ["integer", "null"]},
            },
        },
        "Stats": {
            "allOf": [
                link,
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
        "paths": _paths(),
    }
