//! The test Keystone (`scripts/services.sh keystone`: project `post`, user `ingest`) and the
//! project's Swift account behind it, read and written with plain HTTP, independently of
//! the farm's Swift client.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

pub const AUTH_URL: &str = "http://127.0.0.1:5000/v3";
pub const USER: &str = "ingest";
pub const PASSWORD: &str = "ingest-secret";
pub const PROJECT: &str = "post";

/// A token of the test user, and what Keystone said of it.
pub struct Keystone {
    http: reqwest::blocking::Client,
    token: String,
    user_id: String,
    /// The project's Swift account, from the token's catalogue.
    pub storage_url: String,
}

/// Starts Keystone (and Swift) when needed, and logs in as the test user.
pub fn keystone() -> Keystone {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace");
    let status = Command::new(root.join("scripts/services.sh")).arg("keystone").status().expect("services.sh");
    assert!(status.success(), "could not start Keystone (scripts/services.sh keystone)");
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {"name": USER, "domain": {"name": "Default"}, "password": PASSWORD}}},
        "scope": {"project": {"name": PROJECT, "domain": {"name": "Default"}}},
    }});
    let answer = http.post(format!("{AUTH_URL}/auth/tokens")).json(&body).send().unwrap().error_for_status().unwrap();
    let token = answer.headers()["x-subject-token"].to_str().unwrap().to_string();
    let about: Value = answer.json().unwrap();
    let user_id = about["token"]["user"]["id"].as_str().unwrap().to_string();
    let storage_url = about["token"]["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["type"] == "object-store")
        .flat_map(|s| s["endpoints"].as_array().unwrap().clone())
        .find(|e| e["interface"] == "public")
        .and_then(|e| e["url"].as_str().map(str::to_string))
        .expect("an object-store endpoint");
    Keystone { http, token, user_id, storage_url }
}

/// Settings of a farm process logging in with the test user's password.
pub fn password_env() -> Vec<(&'static str, &'static str)> {
    vec![("OS_AUTH_URL", AUTH_URL), ("OS_USERNAME", USER), ("OS_PASSWORD", PASSWORD), ("OS_PROJECT_NAME", PROJECT), ("OS_REGION_NAME", "RegionOne")]
}

impl Keystone {
    /// A new application credential of the test user: its id and secret.
    pub fn application_credential(&self, name: &str) -> (String, String) {
        let made: Value = self
            .http
            .post(format!("{AUTH_URL}/users/{}/application_credentials", self.user_id))
            .header("X-Auth-Token", &self.token)
            .json(&json!({"application_credential": {"name": name}}))
            .send()
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .unwrap();
        let c = &made["application_credential"];
        (c["id"].as_str().unwrap().into(), c["secret"].as_str().unwrap().into())
    }

    /// Stores `data` at `container/key`.
    pub fn put(&self, path: &str, data: Vec<u8>) -> Result<()> {
        let url = format!("{}/{path}", self.storage_url);
        self.http.put(url).header("X-Auth-Token", &self.token).body(data).send()?.error_for_status()?;
        Ok(())
    }

    /// Copies every object of `container` under `prefix` into a folder (keys relative to
    /// `prefix`).
    pub fn download(&self, container: &str, prefix: &str, dir: &Path) -> Result<usize> {
        let listing = format!("{}/{container}?prefix={prefix}/&format=json", self.storage_url);
        let objects: Vec<Value> = self.http.get(listing).header("X-Auth-Token", &self.token).send()?.error_for_status()?.json()?;
        for name in objects.iter().filter_map(|o| o["name"].as_str()) {
            let data = self.http.get(format!("{}/{container}/{name}", self.storage_url)).header("X-Auth-Token", &self.token).send()?.error_for_status()?.bytes()?;
            let path = dir.join(name.strip_prefix(&format!("{prefix}/")).context("outside the prefix")?);
            std::fs::create_dir_all(path.parent().expect("a parent"))?;
            std::fs::write(path, data)?;
        }
        ensure!(!objects.is_empty(), "nothing under {container}/{prefix}");
        Ok(objects.len())
    }
}
