//! OpenStack Swift (and Rackspace Cloud Files, which is Swift): `swift://container/key`
//! locations, configured the way OpenStack users already are.
//!
//! - tempauth (v1.0): `ST_AUTH`, `ST_USER`, `ST_KEY`, as python-swiftclient reads them;
//! - Keystone v3: `OS_AUTH_URL` with `OS_USERNAME`, `OS_PASSWORD`, `OS_PROJECT_NAME`,
//!   `OS_USER_DOMAIN_NAME`, `OS_PROJECT_DOMAIN_NAME`, or with
//!   `OS_APPLICATION_CREDENTIAL_ID` and `OS_APPLICATION_CREDENTIAL_SECRET`;
//! - Rackspace identity v2.0: `OS_USERNAME` and `RS_API_KEY` (`OS_AUTH_URL` defaults to
//!   Rackspace's identity service);
//! - `OS_REGION_NAME` picks the object-store endpoint of a region (Keystone, Rackspace).
//!
//! The first of tempauth, application credential, Rackspace key and Keystone password that
//! is complete is used. [`auth`] logs in and renews; [`store`] is the container as an
//! `ObjectStore`.

pub mod auth;
pub mod store;

use std::sync::Arc;

use object_store::ObjectStore;

use crate::location::LocationError;
pub use auth::{Credentials, Login, RACKSPACE_IDENTITY};
pub use store::SwiftStore;

/// The Swift flags both binaries take, each with its conventional environment variable.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SwiftArgs {
    /// tempauth (v1.0) URL, e.g. http://swift:8080/auth/v1.0
    #[arg(long, env = "ST_AUTH")]
    pub st_auth: Option<String>,
    /// tempauth user, e.g. account:user
    #[arg(long, env = "ST_USER")]
    pub st_user: Option<String>,
    /// tempauth key
    #[arg(long, env = "ST_KEY", hide_env_values = true)]
    pub st_key: Option<String>,
    /// Keystone v3 URL (https://keystone:5000/v3), or Rackspace identity v2.0's
    #[arg(long, env = "OS_AUTH_URL")]
    pub os_auth_url: Option<String>,
    /// Keystone or Rackspace user name
    #[arg(long, env = "OS_USERNAME")]
    pub os_username: Option<String>,
    /// Keystone password
    #[arg(long, env = "OS_PASSWORD", hide_env_values = true)]
    pub os_password: Option<String>,
    /// Keystone project the token is scoped to
    #[arg(long, env = "OS_PROJECT_NAME")]
    pub os_project_name: Option<String>,
    /// Keystone domain of the user
    #[arg(long, env = "OS_USER_DOMAIN_NAME", default_value = "Default")]
    pub os_user_domain_name: String,
    /// Keystone domain of the project
    #[arg(long, env = "OS_PROJECT_DOMAIN_NAME", default_value = "Default")]
    pub os_project_domain_name: String,
    /// Keystone application credential id (instead of a user's password)
    #[arg(long, env = "OS_APPLICATION_CREDENTIAL_ID")]
    pub os_application_credential_id: Option<String>,
    /// Keystone application credential secret
    #[arg(long, env = "OS_APPLICATION_CREDENTIAL_SECRET", hide_env_values = true)]
    pub os_application_credential_secret: Option<String>,
    /// Rackspace API key (Cloud Files), with OS_USERNAME
    #[arg(long, env = "RS_API_KEY", hide_env_values = true)]
    pub rs_api_key: Option<String>,
    /// Region whose object-store endpoint is used (Keystone, Rackspace)
    #[arg(long, env = "OS_REGION_NAME")]
    pub os_region_name: Option<String>,
}

impl SwiftArgs {
    /// The credentials the flags make, if any set is complete.
    pub fn credentials(&self) -> Option<Credentials> {
        let region = self.os_region_name.clone().filter(|r| !r.is_empty());
        let set = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        if let (Some(url), Some(user), Some(key)) = (set(&self.st_auth), set(&self.st_user), set(&self.st_key)) {
            return Some(Credentials::TempAuth { url, user, key });
        }
        if let (Some(auth_url), Some(id), Some(secret)) = (set(&self.os_auth_url), set(&self.os_application_credential_id), set(&self.os_application_credential_secret)) {
            return Some(Credentials::KeystoneApplication { auth_url, id, secret, region });
        }
        if let (Some(username), Some(api_key)) = (set(&self.os_username), set(&self.rs_api_key)) {
            let auth_url = set(&self.os_auth_url).unwrap_or_else(|| RACKSPACE_IDENTITY.into());
            return Some(Credentials::Rackspace { auth_url, username, api_key, region });
        }
        if let (Some(auth_url), Some(username), Some(password), Some(project)) = (set(&self.os_auth_url), set(&self.os_username), set(&self.os_password), set(&self.os_project_name)) {
            let (user_domain, project_domain) = (self.os_user_domain_name.clone(), self.os_project_domain_name.clone());
            return Some(Credentials::KeystonePassword { auth_url, username, password, project, user_domain, project_domain, region });
        }
        None
    }
}

/// The store of a Swift container, logged in with `credentials` (shared by the process).
pub fn swift_store(container: &str, credentials: Option<&Credentials>, retry_for: std::time::Duration) -> Result<Arc<dyn ObjectStore>, LocationError> {
    let Some(credentials) = credentials else {
        return Err(LocationError::Client {
            bucket: container.into(),
            message: "no Swift credentials: set ST_AUTH, ST_USER and ST_KEY (tempauth), OS_AUTH_URL with OS_USERNAME, OS_PASSWORD and OS_PROJECT_NAME or an application credential (Keystone v3), or OS_USERNAME and RS_API_KEY (Rackspace)".into(),
        });
    };
    opendal::install_default();
    Ok(Arc::new(SwiftStore::new(container, Login::shared(credentials), retry_for)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        swift: SwiftArgs,
    }

    fn credentials(args: &[&str]) -> Option<Credentials> {
        Flags::try_parse_from(std::iter::once("x").chain(args.iter().copied())).unwrap().swift.credentials()
    }

    #[test]
    fn the_first_complete_set_of_credentials_is_used() {
        let temp = credentials(&["--st-auth", "http://s/auth/v1.0", "--st-user", "a:u", "--st-key", "k", "--os-username", "x", "--rs-api-key", "r"]);
        assert!(matches!(temp, Some(Credentials::TempAuth { ref user, .. }) if user == "a:u"));
        let rax = credentials(&["--os-username", "x", "--rs-api-key", "r", "--os-region-name", "LON"]);
        assert!(matches!(rax, Some(Credentials::Rackspace { ref auth_url, ref region, .. }) if auth_url == RACKSPACE_IDENTITY && region.as_deref() == Some("LON")));
        let app = credentials(&["--os-auth-url", "https://k/v3", "--os-application-credential-id", "i", "--os-application-credential-secret", "s"]);
        assert!(matches!(app, Some(Credentials::KeystoneApplication { .. })));
        let password = credentials(&["--os-auth-url", "https://k/v3", "--os-username", "u", "--os-password", "p", "--os-project-name", "post"]);
        assert!(matches!(password, Some(Credentials::KeystonePassword { ref user_domain, .. }) if user_domain == "Default"));
        // A password without a project is no complete set.
        assert_eq!(credentials(&["--os-auth-url", "https://k/v3", "--os-username", "u", "--os-password", "p"]), None);
        assert_eq!(credentials(&[]), None);
        assert!(swift_store("c", None, std::time::Duration::from_secs(1)).unwrap_err().to_string().contains("ST_AUTH"));
    }

    #[test]
    fn credentials_handed_to_a_child_read_back_the_same() {
        let sets = [
            vec!["--st-auth", "http://s/auth/v1.0", "--st-user", "a:u", "--st-key", "k"],
            vec!["--os-username", "x", "--rs-api-key", "r", "--os-region-name", "LON"],
            vec!["--os-auth-url", "https://k/v3", "--os-application-credential-id", "i", "--os-application-credential-secret", "s"],
            vec!["--os-auth-url", "https://k/v3", "--os-username", "u", "--os-password", "p", "--os-project-name", "post", "--os-user-domain-name", "corp"],
        ];
        for args in sets {
            let given = credentials(&args).unwrap();
            let flags: Vec<String> = given.to_env().into_iter().flat_map(|(k, v)| [format!("--{}", k.to_lowercase().replace('_', "-")), v]).collect();
            let read = credentials(&flags.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
            assert_eq!(read, given, "{args:?}");
        }
    }
}
