//! Pieces every provider's settings use: the error type ([`SettingsError`]), secrets given inline or as a
//! file, and base URLs (https, or plain http to loopback only).
//!
//! Below the providers, so each provider's configuration can use them while
//! [`super::config`] above them builds whichever provider is configured.

use std::path::{Path, PathBuf};

use super::Secret;
use super::antom::keys::KeyError;

/// Why a provider's settings (or the fleet's HTTP settings, which share them) cannot
/// be used. The file-level error with file and line is the
/// configuration's `ConfigFileError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// The TOML is malformed or has wrong fields.
    #[error("{path}: {reason}")]
    Parse {
        /// The file (or `<string>`).
        path: String,
        /// What is wrong and on which line.
        reason: String,
    },
    /// A value is unusable.
    #[error("provider setting `{field}`: {reason}")]
    Invalid {
        /// The setting.
        field: String,
        /// Why.
        reason: String,
    },
    /// A key could not be loaded.
    #[error("{0}")]
    Key(#[from] KeyError),
}

impl SettingsError {
    /// The setting to blame, dotted below the provider's table
    /// (`http.connect_timeout_ms`), when one is.
    pub fn setting(&self) -> Option<&str> {
        match self {
            SettingsError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Why, without the setting's name (which [`SettingsError::setting`] gives).
    pub fn reason(&self) -> String {
        match self {
            SettingsError::Invalid { reason, .. } => reason.clone(),
            other => other.to_string(),
        }
    }

    /// An `Invalid` error.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SettingsError {
        SettingsError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A secret given inline or as a file; exactly one of the two.
pub fn resolve_secret(
    field: &str,
    inline: Option<&Secret>,
    file: Option<&PathBuf>,
) -> Result<Secret, SettingsError> {
    let secret = match (inline, file) {
        (Some(_), Some(_)) => {
            return Err(SettingsError::invalid(
                field,
                format!("give either `{field}` or `{field}_file`, not both"),
            ));
        }
        (Some(secret), None) => secret.clone(),
        (None, Some(path)) => {
            let key = format!("{field}_file");
            if let Some(problem) = secret_file_problem(path) {
                return Err(SettingsError::invalid(key, problem.to_string()));
            }
            let text = std::fs::read_to_string(path).map_err(|e| {
                SettingsError::invalid(key.clone(), format!("cannot read {}: {e}", path.display()))
            })?;
            let secret = Secret::new(text.trim().to_string());
            if secret.is_empty() {
                // The file is what needs fixing: name it, and the setting that points there.
                return Err(SettingsError::invalid(
                    key,
                    format!("{} is empty", path.display()),
                ));
            }
            secret
        }
        (None, None) => {
            return Err(SettingsError::invalid(
                field,
                format!("missing: give `{field}_file` (preferred) or `{field}`"),
            ));
        }
    };
    if secret.is_empty() {
        return Err(SettingsError::invalid(field, "is empty"));
    }
    Ok(secret)
}

/// Why a file holding a secret may not be used, and the command that fixes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileProblem {
    /// What is wrong with the file.
    pub detail: String,
    /// The command that fixes it.
    pub fix: String,
}

impl std::fmt::Display for FileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; run `{}`", self.detail, self.fix)
    }
}

/// Whether a secret file is safe to use, as OpenSSH judges a private key: no one but
/// its owner and group may read it, only its owner may change it, and its owner is
/// this service's user (or root, who could change anything anyway). `None` when it
/// is fine, or when it cannot be examined (reading it then says why).
pub fn secret_file_problem(path: &Path) -> Option<FileProblem> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    judge_secret_file(
        path,
        meta.mode(),
        meta.uid(),
        nix::unistd::geteuid().as_raw(),
    )
}

fn judge_secret_file(path: &Path, mode: u32, owner: u32, me: u32) -> Option<FileProblem> {
    let shown = path.display();
    let bits = mode & 0o7777;
    if bits & 0o007 != 0 || bits & 0o020 != 0 {
        let who = if bits & 0o007 != 0 {
            "others can use it"
        } else {
            "its group can change it"
        };
        return Some(FileProblem {
            detail: format!("{shown} holds a secret but {who} (mode {:o})", bits & 0o777),
            fix: format!("chmod 600 {shown}"),
        });
    }
    if owner != me && owner != 0 {
        let name = |uid: u32| {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten()
                .map(|u| format!("uid {uid} ({})", u.name))
                .unwrap_or_else(|| format!("uid {uid}"))
        };
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(me))
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| me.to_string());
        return Some(FileProblem {
            detail: format!(
                "{shown} holds a secret but belongs to {}, not to this service's user {}",
                name(owner),
                name(me)
            ),
            fix: format!("chown {user} {shown}"),
        });
    }
    None
}

/// Checks and parses a base URL: https with a host, no query or fragment. Plain
/// `http://` is accepted only for a loopback host (`127.0.0.0/8`, `::1`,
/// `localhost`): the cloud simulator on this machine. There is no way to send a
/// refund to a remote host without TLS, nor to turn certificate checks off.
/// The returned text has no trailing `/`, so API paths can be appended.
pub fn base_url(field: &str, text: &str) -> Result<String, SettingsError> {
    let url = reqwest::Url::parse(text.trim())
        .map_err(|e| SettingsError::invalid(field, format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(SettingsError::invalid(
            field,
            "must start with https:// (http:// only for a simulator on 127.0.0.1 or localhost)",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(SettingsError::invalid(field, "has no host"));
    }
    if url.scheme() == "http" && !is_loopback(&url) {
        return Err(SettingsError::invalid(
            field,
            "https is required: plain http:// is accepted only for a simulator on this \
             machine (127.0.0.0/8, ::1 or localhost)",
        ));
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(SettingsError::invalid(
            field,
            "must not carry a query, fragment or credentials",
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Whether `text` is a plain `http://` URL to a loopback host, which [`base_url`]
/// accepts: calls to it go without TLS (a local simulator). `false` for anything else,
/// unparsable text included.
pub fn is_plain_http_loopback(text: &str) -> bool {
    reqwest::Url::parse(text.trim()).is_ok_and(|url| url.scheme() == "http" && is_loopback(&url))
}

fn is_loopback(url: &reqwest::Url) -> bool {
    // The URL parser has already normalised the host: IPv4 in dotted decimal (also
    // when written as `0x7f.1` or `2130706433`), IPv6 in brackets, names lower case.
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host == "localhost",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            base_url("u", "https://h.example/openapi/").unwrap(),
            "https://h.example/openapi"
        );
        assert_eq!(
            base_url("u", "http://127.0.0.1:9/").unwrap(),
            "http://127.0.0.1:9"
        );
        for bad in [
            "",
            "ftp://h",
            "https://h/?a=1",
            "https://u:p@h/",
            "not a url",
        ] {
            assert!(base_url("u", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_http_only_for_loopback() {
        for local in [
            "http://127.0.0.1:8480",
            "http://127.9.8.7/x",
            "http://[::1]:8480",
            "http://localhost:8480",
            "http://LOCALHOST",
            "http://2130706433/",
        ] {
            assert!(base_url("base_url", local).is_ok(), "{local}");
            assert!(is_plain_http_loopback(local), "{local}");
        }
        for remote in [
            "http://example.com",
            "http://open-na-global.alipay.com/",
            "http://localhost.example.com",
            "http://127.0.0.1.example.com",
            "http://0.0.0.0:8480",
            "http://10.0.0.5",
            "http://[::ffff:7f00:1]",
            "http://[fe80::1]",
        ] {
            let err = base_url("base_url", remote).unwrap_err().to_string();
            assert!(
                err.contains("`base_url`") && err.contains("https is required"),
                "{remote}: {err}"
            );
            assert!(!is_plain_http_loopback(remote), "{remote}");
        }
        assert!(base_url("base_url", "https://example.com").is_ok());
        assert!(!is_plain_http_loopback("https://127.0.0.1"));
        assert!(!is_plain_http_loopback("not a url"));
    }

    #[test]
    fn secret_files_others_can_use_or_change_are_refused() {
        let path = Path::new("/etc/posbridge/keys/k");
        for (mode, owner) in [(0o600, 1000), (0o400, 1000), (0o640, 1000), (0o600, 0)] {
            assert_eq!(
                judge_secret_file(path, mode, owner, 1000),
                None,
                "{mode:o} {owner}"
            );
        }
        for mode in [0o644, 0o604, 0o602, 0o601, 0o620, 0o666] {
            let problem = judge_secret_file(path, mode, 1000, 1000).expect("refused");
            assert_eq!(problem.fix, "chmod 600 /etc/posbridge/keys/k", "{mode:o}");
            assert!(problem.detail.contains(&format!("{mode:o}")), "{problem}");
        }
        let problem = judge_secret_file(path, 0o600, 1234, 1000).expect("refused");
        assert!(problem.fix.starts_with("chown "), "{problem}");
        assert!(problem.detail.contains("uid 1234"), "{problem}");
    }

    #[test]
    fn secrets_inline_or_file_exactly_one() {
        let s = Secret::new("k");
        assert_eq!(
            resolve_secret("app_key", Some(&s), None).unwrap().expose(),
            "k"
        );
        assert!(resolve_secret("app_key", None, None).is_err());
        let p = PathBuf::from("/x");
        assert!(resolve_secret("app_key", Some(&s), Some(&p)).is_err());
        let blank = Secret::new("  ");
        assert!(resolve_secret("app_key", Some(&blank), None).is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "from-file\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = resolve_secret("app_key", None, Some(&file)).unwrap_err();
        assert!(
            err.to_string().contains("`app_key_file`") && err.to_string().contains("chmod 600"),
            "{err}"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            resolve_secret("app_key", None, Some(&file))
                .unwrap()
                .expose(),
            "from-file"
        );
        std::fs::write(&file, "\n").unwrap();
        let err = resolve_secret("app_key", None, Some(&file)).unwrap_err();
        assert_eq!(err.setting(), Some("app_key_file"), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("{} is empty", file.display())),
            "{err}"
        );
    }
}
