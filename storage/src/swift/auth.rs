//! Logging in to Swift: tempauth (v1.0), Keystone v3 (password or application credential)
//! and Rackspace identity v2.0 (user name and API key), each answering a token, the
//! account's storage URL and when the token expires.
//!
//! [`Login`] keeps the session of one set of credentials for the whole process and logs in
//! again in the background before the token expires (and at once when the service refuses
//! it), so that every store of the account shares one token and a running task never holds
//! a dead one. tempauth hands out the same token until it expires (its memcached may forget
//! it up to a second before the expiry it tells): a renewal in the token's last quarter can
//! get it back, and a request refused just before the next renewal is tried again with a new
//! token (`super::store`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

/// Rackspace's identity service, when `OS_AUTH_URL` does not name another.
pub const RACKSPACE_IDENTITY: &str = "https://identity.api.rackspacecloud.com/v2.0";

/// How to log in. Secrets are never printed (`Debug` shows the method and the user only).
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Credentials {
    /// tempauth or swauth v1.0: `GET ST_AUTH` with `X-Auth-User` and `X-Auth-Key`.
    TempAuth { url: String, user: String, key: String },
    /// Keystone v3 with a user's password, scoped to a project.
    KeystonePassword { auth_url: String, username: String, password: String, project: String, user_domain: String, project_domain: String, region: Option<String> },
    /// Keystone v3 with an application credential (scoped when it was made).
    KeystoneApplication { auth_url: String, id: String, secret: String, region: Option<String> },
    /// Rackspace identity v2.0 with a user name and an API key (Cloud Files).
    Rackspace { auth_url: String, username: String, api_key: String, region: Option<String> },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TempAuth { url, user, .. } => write!(f, "tempauth {user} at {url}"),
            Self::KeystonePassword { auth_url, username, project, .. } => write!(f, "Keystone v3 password of {username} for project {project} at {auth_url}"),
            Self::KeystoneApplication { auth_url, id, .. } => write!(f, "Keystone v3 application credential {id} at {auth_url}"),
            Self::Rackspace { auth_url, username, .. } => write!(f, "Rackspace API key of {username} at {auth_url}"),
        }
    }
}

impl Credentials {
    /// The environment variables that give these credentials to a child process (the
    /// coordinator's probe), by the same conventions [`super::SwiftArgs`] reads.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let region = |r: &Option<String>| r.clone().map(|r| ("OS_REGION_NAME", r));
        match self.clone() {
            Self::TempAuth { url, user, key } => vec![("ST_AUTH", url), ("ST_USER", user), ("ST_KEY", key)],
            Self::KeystonePassword { auth_url, username, password, project, user_domain, project_domain, region: r } => {
                let mut env = vec![("OS_AUTH_URL", auth_url), ("OS_USERNAME", username), ("OS_PASSWORD", password), ("OS_PROJECT_NAME", project)];
                env.extend([("OS_USER_DOMAIN_NAME", user_domain), ("OS_PROJECT_DOMAIN_NAME", project_domain)]);
                env.extend(region(&r));
                env
            }
            Self::KeystoneApplication { auth_url, id, secret, region: r } => {
                let mut env = vec![("OS_AUTH_URL", auth_url), ("OS_APPLICATION_CREDENTIAL_ID", id), ("OS_APPLICATION_CREDENTIAL_SECRET", secret)];
                env.extend(region(&r));
                env
            }
            Self::Rackspace { auth_url, username, api_key, region: r } => {
                let mut env = vec![("OS_AUTH_URL", auth_url), ("OS_USERNAME", username), ("RS_API_KEY", api_key)];
                env.extend(region(&r));
                env
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Swift login refused ({credentials:?}): HTTP {status}")]
    Refused { credentials: String, status: u16 },
    #[error("cannot reach the Swift login service ({credentials:?}): {message}")]
    Unreachable { credentials: String, message: String },
    #[error("the Swift login service's answer ({credentials:?}) has no {what}")]
    Answer { credentials: String, what: String },
}

impl AuthError {
    /// Whether logging in later could work (the service was away), not wrong credentials.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable { .. }) || matches!(self, Self::Refused { status, .. } if *status >= 500 || *status == 429)
    }
}

/// A token, the account's storage URL, and until when the token holds.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub storage_url: String,
    /// When to log in again: a quarter of the token's life before it expires, at most a
    /// minute before (`None`: the service did not say; kept until refused).
    pub renew_at: Option<Instant>,
    /// When the token expires, as the service said (for the log: tempauth tells it in whole
    /// seconds, rounded down).
    pub expires_at: Option<Instant>,
}

impl Session {
    fn new(token: String, storage_url: String, life: Option<Duration>) -> Self {
        Session { token, storage_url, renew_at: renew_at(life), expires_at: life.map(|life| Instant::now() + life) }
    }
}

/// Half to all of `wait` (so that processes logging in after one outage do not all come
/// back at once).
fn jittered(wait: Duration) -> Duration {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    wait / 2 + wait.mul_f64(f64::from(nanos % 1000) / 2000.0)
}

fn renew_at(lifetime: Option<Duration>) -> Option<Instant> {
    lifetime.map(|life| Instant::now() + life.saturating_sub((life / 4).min(Duration::from_secs(60))))
}

/// The session of one set of credentials, shared by the process.
pub struct Login {
    credentials: Credentials,
    http: reqwest::Client,
    session: tokio::sync::Mutex<Option<Session>>,
}

impl Login {
    /// The process's login of `credentials` (made once, then shared).
    pub fn shared(credentials: &Credentials) -> Arc<Login> {
        static LOGINS: OnceLock<Mutex<HashMap<Credentials, Arc<Login>>>> = OnceLock::new();
        let mut logins = LOGINS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
        logins
            .entry(credentials.clone())
            .or_insert_with(|| {
                let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).connect_timeout(Duration::from_secs(5)).build().expect("HTTP client");
                Arc::new(Login { credentials: credentials.clone(), http, session: Default::default() })
            })
            .clone()
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A session that holds: the current one, or a new login when it is due for renewal
    /// or when its token is `refused` (the service answered 401 to it). A login service
    /// that is away is tried again with backoff for up to `patience`, as storage requests
    /// are: a renewal that falls in an outage waits it out instead of failing the task.
    pub async fn session(self: &Arc<Self>, refused: Option<&str>, patience: Duration) -> Result<Session, AuthError> {
        let mut current = self.session.lock().await;
        let reason = match current.as_ref() {
            None => "first",
            Some(s) if refused == Some(s.token.as_str()) => "refused",
            Some(s) if s.renew_at.is_some_and(|at| Instant::now() >= at) => "due",
            Some(s) => return Ok(s.clone()),
        };
        let fresh = self.log_in(current.as_ref(), reason, patience).await?;
        *current = Some(fresh.clone());
        self.renew_in_time(&fresh, patience);
        Ok(fresh)
    }

    /// Renews `session` when it falls due whether or not a request asks for it then: a
    /// request retried through an outage keeps the token it started with, and would only
    /// learn of its expiry from a 401 after the outage. Each session schedules its own
    /// renewal; one replaced or rescheduled in the meantime is left alone.
    fn renew_in_time(self: &Arc<Self>, session: &Session, patience: Duration) {
        let Some(at) = session.renew_at else { return };
        let (login, token) = (Arc::clone(self), session.token.clone());
        tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let mut current = login.session.lock().await;
            if current.as_ref().is_none_or(|s| s.token != token || s.renew_at != Some(at)) {
                return;
            }
            let renewed = login.log_in(current.as_ref(), "due", patience).await;
            match renewed {
                Ok(fresh) => {
                    *current = Some(fresh.clone());
                    login.renew_in_time(&fresh, patience);
                }
                Err(e) => tracing::warn!(error = %e, "Swift token not renewed in time; the next request logs in again"),
            }
        });
    }

    /// Logs in (renewing `previous`, if any), trying again with backoff for up to `patience`
    /// while the service is away.
    async fn log_in(&self, previous: Option<&Session>, reason: &str, patience: Duration) -> Result<Session, AuthError> {
        crate::metrics::SWIFT_LOGINS.with_label_values(&[reason]).inc();
        let started = Instant::now();
        let mut wait = Duration::from_millis(200);
        let fresh = loop {
            match self.login().await {
                Ok(fresh) => break fresh,
                Err(e) if e.is_transient() && started.elapsed() + wait < patience => {
                    tracing::warn!(error = %e, retry_in = ?wait, "Swift login failed; trying again");
                    tokio::time::sleep(jittered(wait)).await;
                    wait = (wait * 2).min(Duration::from_secs(20));
                }
                Err(e) => return Err(e),
            }
        };
        let (renewed, same_token) = (previous.is_some(), previous.is_some_and(|p| p.token == fresh.token));
        let expires_in = fresh.expires_at.map(|at| at.saturating_duration_since(Instant::now()));
        tracing::info!(credentials = ?self.credentials, storage_url = %fresh.storage_url, renewed, reason, same_token, ?expires_in, "Swift token obtained");
        Ok(fresh)
    }

    async fn login(&self) -> Result<Session, AuthError> {
        let shown = format!("{:?}", self.credentials);
        let unreachable = |e: reqwest::Error| AuthError::Unreachable { credentials: shown.clone(), message: e.to_string() };
        let request = match &self.credentials {
            Credentials::TempAuth { url, user, key } => self.http.get(url).header("X-Auth-User", user).header("X-Auth-Key", key),
            Credentials::Rackspace { auth_url, username, api_key, .. } => self
                .http
                .post(format!("{}/tokens", auth_url.trim_end_matches('/')))
                .json(&json!({"auth": {"RAX-KSKEY:apiKeyCredentials": {"username": username, "apiKey": api_key}}})),
            keystone => self.http.post(keystone_tokens_url(keystone)).json(&keystone_body(keystone)),
        };
        let answer = request.header("Accept", "application/json").send().await.map_err(unreachable)?;
        let status = answer.status();
        if !status.is_success() {
            return Err(AuthError::Refused { credentials: shown, status: status.as_u16() });
        }
        let header = |name: &str| answer.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        match &self.credentials {
            Credentials::TempAuth { .. } => {
                let missing = |what: &str| AuthError::Answer { credentials: shown.clone(), what: what.into() };
                let token = header("x-auth-token").ok_or_else(|| missing("X-Auth-Token"))?;
                let storage_url = header("x-storage-url").ok_or_else(|| missing("X-Storage-Url"))?;
                let life = header("x-auth-token-expires").and_then(|s| s.trim().parse::<u64>().ok()).map(Duration::from_secs);
                Ok(Session::new(token, storage_url, life))
            }
            Credentials::Rackspace { region, .. } => {
                let body: Value = answer.json().await.map_err(unreachable)?;
                rackspace_session(&body, region.as_deref()).map_err(|what| AuthError::Answer { credentials: shown, what })
            }
            Credentials::KeystonePassword { region, .. } | Credentials::KeystoneApplication { region, .. } => {
                let token = header("x-subject-token");
                let body: Value = answer.json().await.map_err(unreachable)?;
                keystone_session(token, &body, region.as_deref()).map_err(|what| AuthError::Answer { credentials: shown, what })
            }
        }
    }
}

/// `{auth_url}/auth/tokens`, `/v3` added when the URL does not end with it.
fn keystone_tokens_url(credentials: &Credentials) -> String {
    let (Credentials::KeystonePassword { auth_url, .. } | Credentials::KeystoneApplication { auth_url, .. }) = credentials else {
        unreachable!("Keystone credentials only")
    };
    let base = auth_url.trim_end_matches('/');
    if base.ends_with("/v3") {
        format!("{base}/auth/tokens")
    } else {
        format!("{base}/v3/auth/tokens")
    }
}

fn keystone_body(credentials: &Credentials) -> Value {
    match credentials {
        Credentials::KeystonePassword { username, password, project, user_domain, project_domain, .. } => json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {"name": username, "domain": {"name": user_domain}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"name": project_domain}}},
        }}),
        Credentials::KeystoneApplication { id, secret, .. } => json!({"auth": {
            "identity": {"methods": ["application_credential"], "application_credential": {"id": id, "secret": secret}},
        }}),
        _ => unreachable!("Keystone credentials only"),
    }
}

/// Keystone v3's answer: the token in `X-Subject-Token`, its expiry and the object-store
/// service's public endpoint (in `region` when given) in the body.
fn keystone_session(token: Option<String>, body: &Value, region: Option<&str>) -> Result<Session, String> {
    let token = token.ok_or("X-Subject-Token header")?;
    let catalog = body["token"]["catalog"].as_array().ok_or("token.catalog")?;
    let endpoints = catalog.iter().find(|s| s["type"] == "object-store").and_then(|s| s["endpoints"].as_array()).ok_or("object-store service")?;
    let endpoint = endpoints
        .iter()
        .filter(|e| e["interface"] == "public")
        .find(|e| region.is_none_or(|r| e["region_id"] == r || e["region"] == r))
        .and_then(|e| e["url"].as_str())
        .ok_or_else(|| format!("public object-store endpoint{}", region.map(|r| format!(" in region {r}")).unwrap_or_default()))?;
    let life = body["token"]["expires_at"].as_str().and_then(lifetime_until);
    Ok(Session::new(token, endpoint.to_string(), life))
}

/// Rackspace identity v2.0's answer: `access.token` and the object-store service's public
/// URL (in `region` when given) in `access.serviceCatalog`.
fn rackspace_session(body: &Value, region: Option<&str>) -> Result<Session, String> {
    let token = body["access"]["token"]["id"].as_str().ok_or("access.token.id")?;
    let catalog = body["access"]["serviceCatalog"].as_array().ok_or("access.serviceCatalog")?;
    let endpoints = catalog.iter().find(|s| s["type"] == "object-store").and_then(|s| s["endpoints"].as_array()).ok_or("object-store service")?;
    let endpoint = endpoints
        .iter()
        .find(|e| region.is_none_or(|r| e["region"].as_str().is_some_and(|er| er.eq_ignore_ascii_case(r))))
        .and_then(|e| e["publicURL"].as_str())
        .ok_or_else(|| format!("object-store publicURL{}", region.map(|r| format!(" in region {r}")).unwrap_or_default()))?;
    let life = body["access"]["token"]["expires"].as_str().and_then(lifetime_until);
    Ok(Session::new(token.to_string(), endpoint.to_string(), life))
}

/// The time left until an RFC 3339 instant (`2026-12-01T14:00:00.000000Z` as Keystone
/// writes it, or with an offset, `2026-12-01T08:00:00.000-06:00`, as Rackspace does).
fn lifetime_until(text: &str) -> Option<Duration> {
    let text = text.trim().trim_end_matches('Z');
    let bytes = text.as_bytes();
    let n = bytes.len();
    // A trailing `+HH:MM` or `-HH:MM`: local time = UTC + offset.
    let (local, offset) = if n > 6 && matches!(bytes[n - 6], b'+' | b'-') && bytes[n - 3] == b':' {
        let minutes = text[n - 5..n - 3].parse::<i64>().ok()? * 60 + text[n - 2..].parse::<i64>().ok()?;
        (&text[..n - 6], if bytes[n - 6] == b'-' { -minutes } else { minutes })
    } else {
        (text, 0)
    };
    let local = humantime::parse_rfc3339_weak(local).ok()?;
    let utc = if offset >= 0 { local - Duration::from_secs(offset as u64 * 60) } else { local + Duration::from_secs((-offset) as u64 * 60) };
    Some(utc.duration_since(SystemTime::now()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_an_hour() -> String {
        humantime::format_rfc3339_micros(SystemTime::now() + Duration::from_secs(3600)).to_string()
    }

    #[test]
    fn keystone_answers_the_object_store_of_the_region() {
        let body = json!({"token": {"expires_at": in_an_hour(), "catalog": [
            {"type": "identity", "endpoints": [{"interface": "public", "region_id": "RegionOne", "url": "https://keystone/v3"}]},
            {"type": "object-store", "endpoints": [
                {"interface": "internal", "region_id": "RegionOne", "url": "http://10.0.0.1:8080/v1/AUTH_p"},
                {"interface": "public", "region_id": "RegionOne", "url": "https://swift-one/v1/AUTH_p"},
                {"interface": "public", "region_id": "RegionTwo", "url": "https://swift-two/v1/AUTH_p"}]}]}});
        let s = keystone_session(Some("gAAAA".into()), &body, Some("RegionTwo")).unwrap();
        assert_eq!((s.token.as_str(), s.storage_url.as_str()), ("gAAAA", "https://swift-two/v1/AUTH_p"));
        let left = s.renew_at.unwrap() - Instant::now();
        assert!(left > Duration::from_secs(3480) && left <= Duration::from_secs(3540), "{left:?}");
        assert_eq!(keystone_session(Some("t".into()), &body, None).unwrap().storage_url, "https://swift-one/v1/AUTH_p");
        assert!(keystone_session(Some("t".into()), &body, Some("Elsewhere")).unwrap_err().contains("region Elsewhere"));
        assert!(keystone_session(None, &body, None).unwrap_err().contains("X-Subject-Token"));
    }

    #[test]
    fn rackspace_answers_the_cloud_files_url_of_the_region() {
        let body = json!({"access": {"token": {"id": "rax-token", "expires": "2099-01-01T12:00:00.000-06:00"}, "serviceCatalog": [
            {"type": "rax:dns", "name": "cloudDNS", "endpoints": [{"publicURL": "https://dns"}]},
            {"type": "object-store", "name": "cloudFiles", "endpoints": [
                {"region": "DFW", "publicURL": "https://storage101.dfw1.clouddrive.com/v1/MossoCloudFS_1", "internalURL": "https://snet-storage101.dfw1.clouddrive.com/v1/MossoCloudFS_1"},
                {"region": "LON", "publicURL": "https://storage101.lon3.clouddrive.com/v1/MossoCloudFS_1"}]}]}});
        let s = rackspace_session(&body, Some("lon")).unwrap();
        assert_eq!((s.token.as_str(), s.storage_url.as_str()), ("rax-token", "https://storage101.lon3.clouddrive.com/v1/MossoCloudFS_1"));
        assert!(s.renew_at.unwrap() > Instant::now() + Duration::from_secs(3600));
        assert!(rackspace_session(&body, Some("SYD")).is_err());
    }

    #[test]
    fn keystone_urls_get_v3_once_and_bodies_name_the_method() {
        let app = Credentials::KeystoneApplication { auth_url: "https://keystone:5000/".into(), id: "ac1".into(), secret: "s".into(), region: None };
        assert_eq!(keystone_tokens_url(&app), "https://keystone:5000/v3/auth/tokens");
        assert_eq!(keystone_body(&app)["auth"]["identity"]["methods"], json!(["application_credential"]));
        let password = Credentials::KeystonePassword {
            auth_url: "https://keystone:5000/v3".into(),
            username: "ingest".into(),
            password: "pw".into(),
            project: "post".into(),
            user_domain: "Default".into(),
            project_domain: "Default".into(),
            region: None,
        };
        assert_eq!(keystone_tokens_url(&password), "https://keystone:5000/v3/auth/tokens");
        assert_eq!(keystone_body(&password)["auth"]["scope"]["project"]["name"], "post");
        assert!(!format!("{password:?}").contains("pw") && !format!("{app:?}").contains("\"s\""));
    }

    #[test]
    fn expiry_instants_with_and_without_offsets() {
        let in_a_day = SystemTime::now() + Duration::from_secs(86400);
        let utc = humantime::format_rfc3339_micros(in_a_day).to_string();
        let left = lifetime_until(&utc).unwrap();
        assert!(left > Duration::from_secs(86390) && left <= Duration::from_secs(86400), "{utc}: {left:?}");
        // The same instant six hours behind UTC.
        let local = humantime::format_rfc3339_micros(in_a_day - Duration::from_secs(6 * 3600)).to_string();
        let shifted = format!("{}-06:00", local.trim_end_matches('Z'));
        let left = lifetime_until(&shifted).unwrap();
        assert!(left > Duration::from_secs(86390) && left <= Duration::from_secs(86400), "{shifted}: {left:?}");
        assert_eq!(lifetime_until("2001-01-01T00:00:00Z"), Some(Duration::ZERO));
        assert_eq!(lifetime_until("yesterday"), None);
    }

    #[test]
    fn a_token_is_renewed_a_quarter_of_its_life_before_it_expires_at_most_a_minute() {
        let short = renew_at(Some(Duration::from_secs(20))).unwrap() - Instant::now();
        assert!(short > Duration::from_secs(14) && short <= Duration::from_secs(15), "{short:?}");
        let day = renew_at(Some(Duration::from_secs(86400))).unwrap() - Instant::now();
        assert!(day > Duration::from_secs(86330) && day <= Duration::from_secs(86340), "{day:?}");
        assert!(renew_at(None).is_none());
    }
}
