//! `[console]`: the web console for ops and finance, on its own listener so the public
//! payment API and the console never share a port.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// `[console]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Address and port of the console (`127.0.0.1:8081`). Absent: no console (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Mark the session cookie `Secure` (browsers then send it over HTTPS only). Set it when
    /// a reverse proxy terminates TLS in front of the console (docs/console.md).
    #[serde(default)]
    pub secure_cookie: bool,
    /// A session unused for this long is closed (default 1800 s).
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// Failed logins allowed per user name (and per client address) in any 5 minutes before
    /// further attempts are refused (default 5).
    #[serde(default = "default_login_attempts")]
    pub max_failed_logins: u32,
    /// Who may log in (`[[console.users]]`).
    #[serde(default)]
    pub users: Vec<ConsoleUser>,
}

/// `[[console.users]]`: one person allowed into the console.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleUser {
    /// Login name (recorded in the audit trail).
    pub name: String,
    /// Argon2id PHC string made by `encaisse console hash-password`.
    pub password_hash: String,
    /// `ops` (may replay and discard, download files) or `finance` (reads only).
    pub role: Role,
    /// Tenants this user sees; empty or absent: all of them.
    #[serde(default)]
    pub tenants: Vec<String>,
}

/// What a console user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Operations: acts on parked messages, downloads files.
    Ops,
    /// Finance: reads everything it is allowed to see, changes nothing.
    Finance,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ops => "ops",
            Role::Finance => "finance",
        }
    }
}

fn default_idle_timeout_secs() -> u64 {
    1800
}

fn default_login_attempts() -> u32 {
    5
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            listen: None,
            secure_cookie: false,
            idle_timeout_secs: default_idle_timeout_secs(),
            max_failed_logins: default_login_attempts(),
            users: Vec::new(),
        }
    }
}

/// Problems of `[console]` as `(field, message)`: `tenant_ids` are the configured tenants.
pub fn problems(console: &ConsoleConfig, tenant_ids: &[&str]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if console.idle_timeout_secs == 0 {
        out.push((
            "console.idle_timeout_secs".into(),
            "must be at least 1 second".into(),
        ));
    }
    if console.max_failed_logins == 0 {
        out.push((
            "console.max_failed_logins".into(),
            "must be at least 1 (0 would lock everyone out)".into(),
        ));
    }
    if console.listen.is_some() && console.users.is_empty() {
        out.push((
            "console.users".into(),
            "the console listens but nobody may log in: add [[console.users]]".into(),
        ));
    }
    for (i, user) in console.users.iter().enumerate() {
        let field = format!("console.users[{i}]");
        if user.name.trim().is_empty() {
            out.push((format!("{field}.name"), "must not be empty".into()));
        }
        if console.users[..i].iter().any(|u| u.name == user.name) {
            out.push((
                format!("{field}.name"),
                format!("user {:?} is listed twice", user.name),
            ));
        }
        if let Err(message) = crate::console::password::check_phc(&user.password_hash) {
            out.push((format!("{field}.password_hash"), message));
        }
        for (j, tenant) in user.tenants.iter().enumerate() {
            if !tenant_ids.contains(&tenant.as_str()) {
                out.push((
                    format!("{field}.tenants[{j}]"),
                    format!("no tenant {tenant:?} in [[tenants]]"),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, hash: &str, tenants: &[&str]) -> ConsoleUser {
        ConsoleUser {
            name: name.into(),
            password_hash: hash.into(),
            role: Role::Finance,
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn users_hashes_and_tenants_are_checked() {
        let good = crate::console::password::hash("pw").unwrap();
        let console = ConsoleConfig {
            listen: Some("127.0.0.1:8081".parse().unwrap()),
            users: vec![
                user("anne", &good, &["vitry"]),
                user("anne", "plain text", &["nowhere"]),
            ],
            ..ConsoleConfig::default()
        };
        let fields: Vec<String> = problems(&console, &["vitry"])
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            fields,
            [
                "console.users[1].name",
                "console.users[1].password_hash",
                "console.users[1].tenants[0]"
            ]
        );
        let nobody = ConsoleConfig {
            listen: Some("127.0.0.1:8081".parse().unwrap()),
            ..ConsoleConfig::default()
        };
        assert_eq!(problems(&nobody, &[])[0].0, "console.users");
        assert!(
            problems(&ConsoleConfig::default(), &[]).is_empty(),
            "off by default"
        );
    }

    #[test]
    fn the_section_reads_from_toml() {
        let text = r#"
            listen = "127.0.0.1:8081"
            secure_cookie = true
            [[users]]
            name = "marc"
            password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"
            role = "finance"
        "#;
        let console: ConsoleConfig = toml::from_str(text).unwrap();
        assert!(console.secure_cookie);
        assert_eq!(console.idle_timeout_secs, 1800);
        assert_eq!(console.users[0].role, Role::Finance);
        assert!(console.users[0].tenants.is_empty());
        assert!(toml::from_str::<ConsoleConfig>("lisen = \"x\"").is_err());
    }
}
