"""The OpenAPI 3.1 document of the job server HTTP API, served at ``/openapi.json``.

Written by hand next to :mod:`taskless.core.api`, which it describes; a test checks that every
route of the app appears here and the other way round.
"""

from __future__ import annotations

from typing import Any

from taskless import __version__
from taskless.core.names import MAX_NAME_LENGTH, NAME_PATTERN

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _list_of(key: str, schema: str, description: str) -> dict[str, Any]:
    """A response ``{key: [<schema>, ...]}``."""
    array = {"type": "array", "items": _ref(schema)}
    return _json({"type": "object", "properties": {key: array}}, description)


_TIMESTAMP = {"type": "string", "format": "date-time"}
_NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}

_ERRORS = {
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "422": {"$ref": "#/components/responses/Invalid"},
    "503": {"$ref": "#/components/responses/Unavailable"},
}
_NOT_FOUND = {"404": {"$ref": "#/components/responses/NotFound"}}

_NAME_SCHEMA = {
    "type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH,
    "pattern": f"^{NAME_PATTERN}$",
    "description": "ASCII letters, digits and _ - . : @ +, starting with a letter, digit or _.",
}
_QUEUE = {"name": "queue", "in": "path", "required": True, "schema": _NAME_SCHEMA}
_NAME = {"name": "name", "in": "path", "required": True, "schema": _NAME_SCHEMA}
_LIMIT = {
    "name": "limit", "in": "query", "required": False,
    "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
}

# What a client writes of a job: a whole one (JobInput) or a patch (JobPatch).
_JOB_FIELDS = {
    "payload": {"description": "Any JSON value."},
    "encrypted": _ref("Encrypted"),
    "endpoint": {"type": "string", "format": "uri"},
    "options": _ref("JobOptions"),
}

_SCHEMAS: dict[str, Any] = {
    "JobOptions": {
        "type": "object",
        "description": "Job options; snake_case names (run_at, run_every) are accepted too.",
        "additionalProperties": False,
        "properties": {
            "enabled": {"type": "boolean", "default": True},
            "headers": {
                "type": "object", "additionalProperties": {"type": "string"}, "default": {},
            },
            "retries": {"type": "integer", "minimum": 0, "maximum": 1000, "default": 5},
            "runAt": {
                **_NULLABLE_TIMESTAMP,
                "description": "First run, ISO-8601 with an offset; past or absent: now.",
            },
            "runEvery": {
                "type": ["string", "null"],
                "description": "ISO-8601 duration PnYnMnWnDTnHnMnS, e.g. P1D or P1M-5D.",
            },
            "timezone": {"type": ["string", "null"], "description": "IANA time zone name."},
        },
    },
    "Encrypted": {
        "type": "object",
        "additionalProperties": False,
        "required": ["alg", "kid", "iv", "data"],
        "properties": {k: {"type": "string"} for k in ("alg", "kid", "iv", "data")},
    },
    "JobInput": {
        "type": "object",
        "additionalProperties": False,
        "required": ["endpoint"],
        "description": "Exactly one of payload and encrypted.",
        "properties": _JOB_FIELDS,
    },
    "JobPatch": {
        "type": "object",
        "additionalProperties": False,
        "description": "Only the fields given change; options too, field by field.",
        "properties": _JOB_FIELDS,
    },
    "Job": {
        "type": "object",
        "required": ["id", "queue", "name", "endpoint", "options", "state", "nextRunAt",
                     "createdAt", "updatedAt"],
        "properties": {
            "id": {"type": "string"},
            "queue": {"type": "string"},
            "name": {"type": "string"},
            "endpoint": {"type": "string"},
            "payload": {"description": "Any JSON value (absent when encrypted)."},
            "encrypted": _ref("Encrypted"),
            "options": _ref("JobOptions"),
            "state": {
                "type": "string",
                "enum": ["scheduled", "running", "completed", "failed", "disabled"],
            },
            "nextRunAt": _NULLABLE_TIMESTAMP,
            "createdAt": _TIMESTAMP,
            "updatedAt": _TIMESTAMP,
        },
    },
    "Run": {
        "type": "object",
        "description": "One delivery attempt of one occurrence.",
        "properties": {
            "runId": {"type": "string", "description": "The webhook-id, same across retries."},
            "attempt": {"type": "integer", "minimum": 1},
            "scheduledAt": _TIMESTAMP,
            "startedAt": _TIMESTAMP,
            "finishedAt": _NULLABLE_TIMESTAMP,
            "status": {"type": "string", "enum": ["succeeded", "failed", "running"]},
            "statusCode": {"type": ["integer", "null"]},
            "error": {"type": ["string", "null"]},
            "nextRetryAt": _NULLABLE_TIMESTAMP,
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {
                        "type": "string",
                        "enum": ["invalid", "not_found", "unauthorized", "unavailable",
                                 "internal"],
                    },
                    "message": {"type": "string"},
                    "field": {"type": "string", "description": "e.g. options.run_every"},
                },
            }
        },
    },
    "BatchResult": {
        "type": "object",
        "properties": {
            "status": {"type": "integer", "description": "200, 201 or 422"},
            "job": _ref("Job"),
            "error": {"$ref": _REF + "Error/properties/error"},
        },
    },
}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document (a new dict each call)."""
    job = _json(_ref("Job"), "The job")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Taskless job server",
            "version": __version__,
            "description": "Stores named JSON jobs and delivers them, at the right time, as "
            "signed HTTP POSTs (Standard Webhooks) to your app.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/queues/{queue}/jobs": {
                "parameters": [_QUEUE],
                "get": {
                    "operationId": "listJobs",
                    "summary": "List the jobs of a queue, ordered by name",
                    "parameters": [
                        _LIMIT,
                        {"name": "after", "in": "query", "required": False,
                         "schema": {"type": "string"},
                         "description": "Only names after this one (paging)."},
                    ],
                    "responses": {"200": _list_of("jobs", "Job", "The jobs"), **_ERRORS},
                },
                "post": {
                    "operationId": "createJob",
                    "summary": "Create a job with a generated name",
                    "requestBody": {"required": True, **_json(_ref("JobInput"), "The job")},
                    "responses": {"201": job, **_ERRORS},
                },
            },
            "/v1/queues/{queue}/jobs:batch": {
                "parameters": [_QUEUE],
                "post": {
                    "operationId": "upsertJobs",
                    "summary": "Create or replace up to 1000 jobs, each with its own result",
                    "description": (
                        "Each job is validated on its own and gets its own result: one "
                        "per job, in order (201 created, 200 replaced, 422 with the "
                        "error of a bad job, whose field is prefixed 'jobs[i].'). A bad job "
                        "does not sink the others; it alone is not stored. Only a body that "
                        "is not JSON, or not a {\"jobs\": [...]} object of at most 1000 jobs, "
                        "is refused whole (422)."
                    ),
                    "requestBody": {
                        "required": True,
                        **_json(
                            {"type": "object", "required": ["jobs"], "properties": {
                                "jobs": {"type": "array", "maxItems": 1000, "items": {
                                    "allOf": [_ref("JobInput")],
                                    "properties": {"name": _NAME_SCHEMA},
                                }}}},
                            "The jobs; a job without a name gets a generated one",
                        ),
                    },
                    "responses": {
                        "200": _list_of("results", "BatchResult", "One result per job, in order"),
                        **_ERRORS,
                    },
                },
            },
            "/v1/queues/{queue}/jobs/{name}": {
                "parameters": [_QUEUE, _NAME],
                "get": {
                    "operationId": "getJob",
                    "summary": "Get a job",
                    "responses": {"200": job, **_NOT_FOUND, **_ERRORS},
                },
                "put": {
                    "operationId": "upsertJob",
                    "summary": "Create or replace a job",
                    "requestBody": {"required": True, **_json(_ref("JobInput"), "The job")},
                    "responses": {"200": _json(_ref("Job"), "Replaced"),
                                  "201": _json(_ref("Job"), "Created"), **_ERRORS},
                },
                "patch": {
                    "operationId": "updateJob",
                    "summary": "Change only the given fields of a job",
                    "requestBody": {"required": True, **_json(_ref("JobPatch"), "The changes")},
                    "responses": {"200": job, **_NOT_FOUND, **_ERRORS},
                },
                "delete": {
                    "operationId": "deleteJob",
                    "summary": "Delete a job and its run history",
                    "responses": {"200": _json(_ref("Job"), "The deleted job"),
                                  **_NOT_FOUND, **_ERRORS},
                },
            },
            "/v1/queues/{queue}/jobs/{name}/runs": {
                "parameters": [_QUEUE, _NAME],
                "get": {
                    "operationId": "listRuns",
                    "summary": "The run history of a job, newest first",
                    "parameters": [_LIMIT],
                    "responses": {
                        "200": _list_of("runs", "Run", "The runs"), **_NOT_FOUND, **_ERRORS,
                    },
                },
            },
            "/v1/queues/{queue}/jobs/{name}/run": {
                "parameters": [_QUEUE, _NAME],
                "post": {
                    "operationId": "runJob",
                    "summary": "Deliver the job's pending occurrence now",
                    "responses": {"200": job, **_NOT_FOUND, **_ERRORS},
                },
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "security": [],
                    "summary": "Liveness: the server and its database answer",
                    "responses": {
                        "200": _json({"type": "object"}, "Healthy"),
                        "503": {"$ref": "#/components/responses/Unavailable"},
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "security": [],
                    "summary": "This document",
                    "responses": {"200": _json({"type": "object"}, "The OpenAPI document")},
                }
            },
        },
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "TASKLESS_API_KEY"},
            },
            "responses": {
                "Unauthorized": _json(_ref("Error"), "Missing or wrong API key"),
                "Invalid": _json(_ref("Error"), "Invalid input; error.field names it"),
                "NotFound": _json(_ref("Error"), "No such job"),
                "Unavailable": _json(_ref("Error"), "The database is unavailable"),
            },
        },
    }
