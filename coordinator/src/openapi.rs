//! The OpenAPI document served at `/openapi.json`, derived from the request and response
//! types and the handlers' `#[utoipa::path]` annotations (OpenAPI 3.1), so it cannot drift
//! from what the API does. It is validated and property-tested against the running
//! coordinator in the test suite (`tests/e2e/api_contract.rs`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "HLS review farm coordinator",
        description = "Jobs in (camera originals to an HLS review ladder), job state out. Every route but /healthz, /readyz and /metrics needs `Authorization: Bearer <token>` of a principal whose role allows it: ingest submits and reads jobs, producer also fetches content keys and manages shares, admin does everything (cancelling jobs, reading the audit trail)."
    ),
    paths(api::create_job, api::list_jobs, api::get_job, api::cancel_job, api::read_audit, crate::delivery::job_key, crate::shares::create, crate::shares::list, crate::shares::revoke, crate::delivery::share_media, crate::delivery::share_key, crate::delivery::job_media, crate::trace_api::trace_leak, api::healthz, api::ready, api::metrics),
    components(schemas(crate::accept::JobRequest, api::JobView, api::TaskView, api::JobList, api::ErrorBody, api::Readiness, crate::audit::Record, crate::shares::ShareRequest, crate::shares::NewShare, crate::shares::Share, crate::trace_api::TraceRequest, crate::trace::TraceReport)),
    modifiers(&BearerToken)
)]
struct ApiDoc;

/// The `bearer` security scheme the paths name.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    }
}

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_every_route_and_its_security() {
        let doc = serde_json::to_value(document()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        for (path, method) in [("/v1/jobs", "post"), ("/v1/jobs", "get"), ("/v1/jobs/{id}", "get"), ("/v1/jobs/{id}", "delete"), ("/readyz", "get")] {
            assert!(doc["paths"][path][method].is_object(), "{method} {path}");
        }
        assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
        assert_eq!(doc["paths"]["/v1/jobs"]["post"]["security"][0]["bearer"], serde_json::json!([]));
        assert!(doc["components"]["schemas"]["Ladder"].is_object());
    }
}
