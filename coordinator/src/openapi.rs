//! The OpenAPI document served at `/openapi.json`.

use serde_json::{json, Value};

pub fn document() -> Value {
    let error = json!({"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]});
    let job = json!({
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "state": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
            "source": {"type": "string"}, "output": {"type": "string"},
            "priority": {"type": "string", "enum": ["high", "normal"]},
            "idempotency_key": {"type": ["string", "null"]},
            "error": {"type": ["string", "null"], "description": "what was wrong with which input"},
            "master_playlist": {"type": ["string", "null"]},
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "eta_seconds": {"type": ["number", "null"]},
            "created_ms": {"type": "integer"}, "updated_ms": {"type": "integer"},
            "tasks": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "string"}, "part": {"type": "object", "description": "kind video: a chunk {start, end (null: to the end), audio (it writes the audio segments of its range too)}; kind audio: the whole-source audio task of jobs split before task schema 3"}, "state": {"type": "string"},
                "frames_done": {"type": "integer"}, "frames_total": {"type": ["integer", "null"]},
                "progress": {"type": "number"}, "error": {"type": ["string", "null"]}}}}
        }
    });
    let request = json!({
        "type": "object", "additionalProperties": false, "required": ["source", "output"],
        "properties": {
            "source": {"type": "string", "description": "s3://bucket/key or a path the workers can read"},
            "output": {"type": "string", "description": "s3://bucket/prefix or a folder"},
            "ladder": {"type": "object", "description": "a ladder (see the README); default: the review ladder"},
            "priority": {"type": "string", "enum": ["high", "normal"], "default": "normal"},
            "idempotency_key": {"type": "string", "maxLength": 200}
        }
    });
    let err = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let job_ok = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}});
    json!({
        "openapi": "3.0.3",
        "info": {"title": "HLS review farm coordinator", "version": env!("CARGO_PKG_VERSION")},
        "paths": {
            "/v1/jobs": {
                "post": {
                    "summary": "Submit a transcode job",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobRequest"}}}},
                    "responses": {
                        "201": job_ok("accepted: stored, and every task confirmed by the broker"),
                        "200": job_ok("the job already submitted with this idempotency key"),
                        "400": err("malformed request"), "403": err("source or output outside the allowed locations"),
                        "413": err("request body too large"), "422": err("the source cannot be used (missing, not media...)"),
                        "503": err("the broker is unavailable")
                    }
                },
                "get": {
                    "summary": "List jobs",
                    "parameters": [
                        {"name": "state", "in": "query", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}}
                    ],
                    "responses": {"200": {"description": "a page of jobs and next_cursor"}, "400": err("bad query")}
                }
            },
            "/v1/jobs/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "get": {"summary": "A job's state, progress and tasks", "responses": {"200": job_ok("the job"), "404": err("no such job")}},
                "delete": {"summary": "Cancel a job", "responses": {"200": job_ok("cancelled"), "404": err("no such job"), "409": err("already final")}}
            },
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
            "/readyz": {"get": {"summary": "Database and broker reachable", "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition format"}}}}
        },
        "components": {"schemas": {"Job": job, "JobRequest": request, "Error": error}}
    })
}
