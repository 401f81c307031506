//! Who may call the API: named principals with a role, read from the file that
//! `FARM_PRINCIPALS_FILE` names, each holding the SHA-256 of its bearer token.
//!
//! Several principals (and several tokens per name) can be live at once, so a token is
//! rotated by adding the new one, moving the client, then removing the old. The legacy
//! `FARM_API_TOKEN` is one more principal, `api-token`, with the admin role. A share viewer
//! is not a principal: shares authorise themselves, for their own job only.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a principal may do; each role includes the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Submits and reads jobs (the ingest pipeline).
    Ingest,
    /// Also creates and revokes share links.
    Producer,
    /// Everything: cancelling jobs, reading the audit trail.
    Admin,
}

/// The API's actions, each with the least role it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    SubmitJob,
    ReadJobs,
    CancelJob,
    ManageShares,
    /// A content key of an encrypted job (to play it).
    FetchKey,
    ReadAudit,
    /// Trace a leaked copy of a watermarked job to its shares.
    TraceLeak,
    ReadApiDocument,
}

impl Action {
    pub fn least_role(self) -> Role {
        match self {
            Self::SubmitJob | Self::ReadJobs | Self::ReadApiDocument => Role::Ingest,
            Self::ManageShares | Self::FetchKey => Role::Producer,
            Self::CancelJob | Self::ReadAudit | Self::TraceLeak => Role::Admin,
        }
    }
}

impl Role {
    pub fn may(self, action: Action) -> bool {
        self >= action.least_role()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Producer => "producer",
            Self::Admin => "admin",
        }
    }
}

/// A caller the API knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

/// One entry of the principals file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    role: Role,
    /// Lowercase hex SHA-256 of the token (`coordinator token` prints a token and its line).
    token_sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PrincipalsError {
    #[error("reading the principals file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the principals file {path} is not a JSON list of {{\"name\", \"role\", \"token_sha256\"}}: {source}")]
    Parse { path: String, source: serde_json::Error },
    #[error("the principals file {path}: entry {index} ({name:?}): {message}")]
    Entry { path: String, index: usize, name: String, message: String },
}

/// Everyone who may call the API; empty means the API is open (the embedded farm on
/// loopback only, as the admin).
#[derive(Debug, Clone, Default)]
pub struct Principals {
    known: Vec<([u8; 32], Principal)>,
}

impl Principals {
    /// The principals file (if any) plus the legacy single token (if any).
    pub fn load(file: Option<&Path>, api_token: Option<&str>) -> Result<Self, PrincipalsError> {
        let mut known = Vec::new();
        if let Some(path) = file {
            let shown = path.display().to_string();
            let text = std::fs::read(path).map_err(|source| PrincipalsError::Read { path: shown.clone(), source })?;
            let entries: Vec<Entry> = serde_json::from_slice(&text).map_err(|source| PrincipalsError::Parse { path: shown.clone(), source })?;
            for (index, e) in entries.into_iter().enumerate() {
                let bad = |message: &str| PrincipalsError::Entry { path: shown.clone(), index, name: e.name.clone(), message: message.into() };
                let name_ok = !e.name.is_empty() && e.name.len() <= 64 && e.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
                if !name_ok {
                    return Err(bad("a name is 1-64 characters of letters, digits and -_.@"));
                }
                let hash = hex::decode(e.token_sha256.trim()).ok().and_then(|h| <[u8; 32]>::try_from(h).ok());
                let Some(hash) = hash else { return Err(bad("token_sha256 must be 64 hex digits")) };
                known.push((hash, Principal { name: e.name, role: e.role }));
            }
        }
        if let Some(token) = api_token.map(str::trim).filter(|t| !t.is_empty()) {
            known.push((token_hash(token), Principal { name: "api-token".into(), role: Role::Admin }));
        }
        Ok(Self { known })
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// The principal of this name (the first entry of it: a name's entries share a role
    /// while its token rotates), for callers the broker authenticated (AMQP `user_id`).
    pub fn named(&self, name: &str) -> Option<Principal> {
        self.known.iter().map(|(_, p)| p).find(|p| p.name == name).cloned()
    }

    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// The principal whose token this is. Every entry is compared, in constant time each,
    /// so the answer's timing does not say which entry (if any) matched.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let given = token_hash(token.trim());
        let mut found = None;
        for (hash, principal) in &self.known {
            if farm_service::secret::same(&given, hash) && found.is_none() {
                found = Some(principal.clone());
            }
        }
        found
    }
}

pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new random token (32 bytes from the OS, hex) and the principals-file line for it.
pub fn new_token(name: &str, role: Role) -> std::io::Result<(String, String)> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(std::io::Error::other)?;
    let token = hex::encode(bytes);
    let line = serde_json::json!({"name": name, "role": role, "token_sha256": hex::encode(token_hash(&token))}).to_string();
    Ok((token, line))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn each_role_includes_the_one_before() {
        use Action::*;
        let all = [SubmitJob, ReadJobs, CancelJob, ManageShares, FetchKey, ReadAudit, ReadApiDocument];
        let allowed = |role: Role| all.iter().filter(|a| role.may(**a)).copied().collect::<Vec<_>>();
        assert_eq!(allowed(Role::Ingest), [SubmitJob, ReadJobs, ReadApiDocument]);
        assert_eq!(allowed(Role::Producer), [SubmitJob, ReadJobs, ManageShares, FetchKey, ReadApiDocument]);
        assert_eq!(allowed(Role::Admin), all);
    }

    #[test]
    fn tokens_find_their_principal_and_rotation_keeps_both() {
        let old = hex::encode(token_hash("old-token-of-ingest"));
        let new = hex::encode(token_hash("new-token-of-ingest"));
        let f = file(&format!(
            r#"[{{"name": "ingest", "role": "ingest", "token_sha256": "{old}"}},
                {{"name": "ingest", "role": "ingest", "token_sha256": "{new}"}},
                {{"name": "eve@studio", "role": "producer", "token_sha256": "{}"}}]"#,
            hex::encode(token_hash("producer-token"))
        ));
        let p = Principals::load(Some(f.path()), Some("legacy-token-1234")).unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!(p.authenticate("old-token-of-ingest").unwrap().role, Role::Ingest);
        assert_eq!(p.authenticate("new-token-of-ingest ").unwrap().name, "ingest");
        assert_eq!(p.authenticate("producer-token").unwrap(), Principal { name: "eve@studio".into(), role: Role::Producer });
        assert_eq!(p.authenticate("legacy-token-1234").unwrap(), Principal { name: "api-token".into(), role: Role::Admin });
        assert_eq!(p.authenticate("producer-token2"), None);
        assert_eq!(p.named("eve@studio").unwrap().role, Role::Producer);
        assert_eq!(p.named("eve"), None);
        assert_eq!(p.authenticate(""), None);
    }

    #[test]
    fn a_bad_file_is_refused_with_the_entry_named() {
        let short = file(r#"[{"name": "a", "role": "admin", "token_sha256": "abcd"}]"#);
        let err = Principals::load(Some(short.path()), None).unwrap_err().to_string();
        assert!(err.contains("entry 0 (\"a\")") && err.contains("64 hex digits"), "{err}");
        let role = file(r#"[{"name": "a", "role": "root", "token_sha256": "00"}]"#);
        assert!(Principals::load(Some(role.path()), None).unwrap_err().to_string().contains("not a JSON list"));
        let name = file(&format!(r#"[{{"name": "a b", "role": "admin", "token_sha256": "{}"}}]"#, "0".repeat(64)));
        assert!(Principals::load(Some(name.path()), None).unwrap_err().to_string().contains("letters, digits"));
        assert!(Principals::load(Some(Path::new("/nonexistent/principals.json")), None).is_err());
        assert!(Principals::load(None, None).unwrap().is_empty());
    }

    #[test]
    fn a_new_token_matches_its_line() {
        let (token, line) = new_token("ops", Role::Admin).unwrap();
        assert_eq!(token.len(), 64);
        let f = file(&format!("[{line}]"));
        assert_eq!(Principals::load(Some(f.path()), None).unwrap().authenticate(&token).unwrap().name, "ops");
    }
}
