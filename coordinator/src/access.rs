//! Who is calling and whether they may: the bearer token names a principal
//! ([`crate::principals`]), the route and method name an [`Action`], the principal's role
//! allows it or the request is refused (401 without a known token, 403 for a role that
//! may not) and the refusal goes to the audit trail.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;

use crate::app::{ApiError, AppState};
use crate::audit::{self, Event};
use crate::principals::{Action, Role};

/// The caller of a request that got through, for handlers (and their audit rows).
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// The peer's address (the coordinator does not trust forwarding headers).
    pub address: String,
}

impl Caller {
    /// An audit event by this caller.
    pub fn event(&self, action: &'static str, job_id: Option<&str>, detail: impl Into<String>) -> Event {
        Event {
            principal: self.name.clone(),
            address: self.address.clone(),
            action,
            job_id: job_id.map(str::to_string),
            share_id: None,
            detail: detail.into(),
        }
    }
}

/// The action a route stands for; routes not listed need the admin role.
pub fn action_of(method: &Method, route: &str) -> Option<Action> {
    Some(match (method.as_str(), route) {
        ("POST", "/v1/jobs") => Action::SubmitJob,
        ("GET", "/v1/jobs" | "/v1/jobs/{id}") => Action::ReadJobs,
        ("DELETE", "/v1/jobs/{id}") => Action::CancelJob,
        ("GET", "/v1/audit") => Action::ReadAudit,
        ("POST", "/v1/jobs/{id}/trace") => Action::TraceLeak,
        ("GET", "/v1/jobs/{id}/keys/{period}" | "/v1/jobs/{id}/media/{*file}") => Action::FetchKey,
        ("GET" | "POST", "/v1/jobs/{id}/shares") | ("DELETE", "/v1/shares/{id}") => Action::ManageShares,
        ("GET", "/openapi.json") => Action::ReadApiDocument,
        _ => return None,
    })
}

/// The middleware of every guarded route.
pub async fn authorise(State(app): State<Arc<AppState>>, mut request: axum::extract::Request, next: axum::middleware::Next) -> Result<Response, ApiError> {
    let address = request.extensions().get::<ConnectInfo<SocketAddr>>().map_or("-".to_string(), |c| c.0.ip().to_string());
    let route = request.extensions().get::<MatchedPath>().map_or("", |p| p.as_str()).to_string();
    let action = action_of(request.method(), &route);
    let what = format!("{} {}", request.method(), truncate(request.uri().path(), 200));
    let caller = if app.principals.is_empty() {
        Caller { name: "local".into(), role: Role::Admin, address }
    } else {
        let token = request
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let principal = token.and_then(|t| app.principals.authenticate(t));
        let Some(principal) = principal else {
            let reason = if token.is_some() { "the bearer token is not valid" } else { "missing `Authorization: Bearer <token>` header" };
            deny(&app, "-", &address, &what, reason).await;
            return Err(ApiError(StatusCode::UNAUTHORIZED, reason.into()));
        };
        Caller { name: principal.name, role: principal.role, address }
    };
    let allowed = match action {
        Some(a) => caller.role.may(a),
        None => caller.role == Role::Admin,
    };
    if !allowed {
        let reason = format!("the {} role may not do this", caller.role.as_str());
        deny(&app, &caller.name, &caller.address, &what, &reason).await;
        return Err(ApiError(StatusCode::FORBIDDEN, format!("{reason} ({what})")));
    }
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

async fn deny(app: &AppState, principal: &str, address: &str, what: &str, reason: &str) {
    let event = Event {
        principal: principal.into(),
        address: address.into(),
        action: "request.denied",
        job_id: None,
        share_id: None,
        detail: format!("{what}: {reason}"),
    };
    audit::record(&app.store, event).await;
}

/// `s` cut to `max` characters, for audit rows of what callers sent.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_names_its_action_and_unknown_ones_need_an_admin() {
        assert_eq!(action_of(&Method::POST, "/v1/jobs"), Some(Action::SubmitJob));
        assert_eq!(action_of(&Method::GET, "/v1/jobs/{id}"), Some(Action::ReadJobs));
        assert_eq!(action_of(&Method::DELETE, "/v1/jobs/{id}"), Some(Action::CancelJob));
        assert_eq!(action_of(&Method::GET, "/v1/audit"), Some(Action::ReadAudit));
        assert_eq!(action_of(&Method::POST, "/v1/jobs/{id}/trace"), Some(Action::TraceLeak));
        assert_eq!(action_of(&Method::POST, "/v1/jobs/{id}/shares"), Some(Action::ManageShares));
        assert_eq!(action_of(&Method::DELETE, "/v1/shares/{id}"), Some(Action::ManageShares));
        assert_eq!(action_of(&Method::PUT, "/v1/jobs/{id}"), None);
        assert_eq!(truncate("ééé", 2), "éé");
    }
}
