//! Validation: every field the chosen mode needs, every problem listed at once.

use super::{AuthMode, Cloud, ConnectorSettings, SmtpTls, TransportKind, non_blank};
use crate::error::{Error, Result, SettingsProblem};
use crate::fields::PASSWORD_REQUIRED;
use crate::message::Mailbox;
use crate::net::{https_url, plaintext_credentials_problem};
use crate::secret::Secret;

impl ConnectorSettings {
    /// Checks that every field the chosen mode needs is present and consistent. Nothing is
    /// required when the connector is disabled; only the outbox needs nothing else when
    /// `outbox_dir` is set.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSettings`] listing every problem at once, each naming the field as the
    /// admin screen shows it and its settings key.
    pub fn validate(&self) -> Result<()> {
        self.validate_for(false)
    }

    /// [`validate`](Self::validate), without requiring the app registration's fields (client
    /// id, tenant, secret or certificate) when the caller brings its own token provider.
    pub(super) fn validate_for(&self, own_tokens: bool) -> Result<()> {
        let problems = self.problems(own_tokens);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidSettings { problems })
        }
    }

    fn problems(&self, own_tokens: bool) -> Vec<SettingsProblem> {
        let mut problems = Vec::new();
        if !self.enabled {
            return problems;
        }
        self.dkim_problems(&mut problems);
        problems.extend(self.placeholder_problems());
        if let Some(url) = non_blank(self.queue_url.as_ref().map(Secret::expose_secret)) {
            // Without a queue feature, `build` would send directly: said here, not ignored.
            #[cfg(any(feature = "queue-sqlite", feature = "queue-postgres"))]
            let trouble = crate::queue::url_problem(url);
            #[cfg(not(any(feature = "queue-sqlite", feature = "queue-postgres")))]
            let trouble = {
                let _ = url;
                Some(
                    "this build has no queue: enable the `queue-sqlite` or `queue-postgres` \
                     feature, or remove `queue_url` to send directly"
                        .to_owned(),
                )
            };
            if let Some(trouble) = trouble {
                problem(
                    &mut problems,
                    "queue_url",
                    format!("Queue URL (`queue_url`): {trouble}"),
                );
            }
            // 0 is "no limit" for `recipient_limit` and `queue_rate_per_minute`; these two
            // have none, and the worker would take 0 as 1 unsaid.
            for (key, value, default) in [
                ("queue_max_attempts", self.queue_max_attempts, "10"),
                (
                    "queue_max_in_flight",
                    self.queue_max_in_flight,
                    "4 for Graph, 3 for SMTP: Exchange Online's limits per mailbox",
                ),
            ] {
                if value == Some(0) {
                    problem(
                        &mut problems,
                        key,
                        format!(
                            "`{key}` must be at least 1 (0 is not \"no limit\" here); remove \
                             it for the default, {default}"
                        ),
                    );
                }
            }
        }
        if let Some(dir) = &self.outbox_dir {
            if dir.as_os_str().is_empty() {
                problem(
                    &mut problems,
                    "outbox_dir",
                    "Outbox folder (`outbox_dir`) is empty; remove it to send mail, or name a folder",
                );
            }
            if non_blank(self.user_name.as_deref()).is_some() {
                self.check_sender(&mut problems, "");
            }
            return problems;
        }
        let Some(mode) = self.auth_mode else {
            problem(
                &mut problems,
                "auth_mode",
                "Authentication Mode (`auth_mode`) is required when the connector is enabled: \
                 choose `oauth`, `basic` or `none`",
            );
            return problems;
        };
        let transport = self.transport_kind();
        self.check_sender(
            &mut problems,
            &format!("when Authentication Mode is {mode}"),
        );

        match mode {
            // A caller's own token provider signs in; the app registration's fields are its.
            AuthMode::OAuth if own_tokens => {}
            AuthMode::OAuth => self.oauth_problems(&mut problems),
            AuthMode::Basic => {
                if self.password.as_ref().is_none_or(Secret::is_empty) {
                    problem(&mut problems, "password", PASSWORD_REQUIRED);
                }
                if transport == TransportKind::Graph {
                    problem(
                        &mut problems,
                        "transport",
                        "Transport `graph` needs Authentication Mode OAuth: set `transport = \"smtp\"` for Basic, or switch `auth_mode` to `oauth`",
                    );
                }
            }
            AuthMode::None => {
                if transport == TransportKind::Graph {
                    problem(
                        &mut problems,
                        "transport",
                        "Transport `graph` needs Authentication Mode OAuth: an anonymous relay (`auth_mode = \"none\"`) uses `transport = \"smtp\"`",
                    );
                }
            }
        }

        match transport {
            TransportKind::Graph => {
                check_url(
                    &mut problems,
                    "authority_host",
                    "Authority host",
                    self.authority_host.as_deref(),
                    self.tenant_id.as_deref(),
                );
                check_url(
                    &mut problems,
                    "graph_endpoint",
                    "Graph endpoint",
                    self.graph_endpoint.as_deref(),
                    None,
                );
            }
            TransportKind::Smtp => {
                // Exchange Online's resource for SMTP in a national cloud is not documented:
                // the global scope would be asked of that cloud's login host and refused.
                if mode == AuthMode::OAuth
                    && self.cloud != super::Cloud::Global
                    && non_blank(self.oauth_scope.as_deref()).is_none()
                {
                    problem(
                        &mut problems,
                        "oauth_scope",
                        format!(
                            "OAuth scope (`oauth_scope`) is required for SMTP with OAuth in the \
                             `{}` cloud: set it to that cloud's Exchange Online resource with \
                             `/.default` (commonly `https://outlook.office365.us/.default` for \
                             US Government), or use `transport = \"graph\"`",
                            self.cloud.as_str()
                        ),
                    );
                }
                if mode == AuthMode::OAuth {
                    check_url(
                        &mut problems,
                        "authority_host",
                        "Authority host",
                        self.authority_host.as_deref(),
                        self.tenant_id.as_deref(),
                    );
                }
                match self.smtp_host() {
                    None => problem(
                        &mut problems,
                        "smtp_host",
                        format!(
                            "SMTP host (`smtp_host`) is required when Authentication Mode is {mode}"
                        ),
                    ),
                    // Never quoted: what precedes the `@` may be a password.
                    Some(host) if host.contains('@') => problem(
                        &mut problems,
                        "smtp_host",
                        "SMTP host (`smtp_host`) contains a user name or password (`user@` or \
                         `user:password@`): set it to the host name only, e.g. \
                         `smtp.office365.com`; the user name goes in User Name (`user_name`) \
                         and the password in Password (`password`)"
                            .to_owned(),
                    ),
                    Some(host)
                        if host.contains(['/', ':', ' '])
                            && crate::net::ipv6_host(host).is_none() =>
                    {
                        problem(
                            &mut problems,
                            "smtp_host",
                            format!(
                                "SMTP host (`smtp_host`) `{host}` must be a host name only, e.g. `smtp.office365.com`; put the port in `smtp_port`"
                            ),
                        );
                    }
                    Some(host) => {
                        if mode != AuthMode::None
                            && self.smtp_tls_mode() == SmtpTls::None
                            && let Some(message) = plaintext_credentials_problem(
                                host,
                                self.smtp_allow_plaintext_credentials_dangerous,
                            )
                        {
                            problem(
                                &mut problems,
                                "smtp_allow_plaintext_credentials_dangerous",
                                message,
                            );
                        }
                    }
                }
                if self.smtp_port == Some(0) {
                    problem(
                        &mut problems,
                        "smtp_port",
                        "SMTP port (`smtp_port`) must not be 0; Exchange Online uses 587",
                    );
                }
                if let Some(message) = self.port_tls_problem() {
                    problem(&mut problems, "smtp_port", message);
                }
            }
        }
        if let Some(path) = &self.tls_ca_file
            && !path.is_file()
        {
            problem(
                &mut problems,
                "tls_ca_file",
                format!(
                    "Trusted CA file (`tls_ca_file`) `{}` does not exist or is not a file",
                    path.display()
                ),
            );
        }
        problems
    }

    pub(super) fn check_sender(
        &self,
        problems: &mut Vec<SettingsProblem>,
        when: &str,
    ) -> Option<Mailbox> {
        match non_blank(self.user_name.as_deref()) {
            None => {
                problem(
                    problems,
                    "user_name",
                    format!(
                        "User Name (`user_name`) is required {when}: it is the sender mailbox, e.g. `no-reply@contoso.com`"
                    ),
                );
                None
            }
            Some(name) => match Mailbox::parse(name) {
                Ok(mailbox) => Some(mailbox),
                Err(_) => {
                    problem(
                        problems,
                        "user_name",
                        format!(
                            "User Name (`user_name`) `{name}` is not an email address; use the sender mailbox, e.g. `no-reply@contoso.com`"
                        ),
                    );
                    None
                }
            },
        }
    }
}

pub(super) fn problem(
    problems: &mut Vec<SettingsProblem>,
    field: &str,
    message: impl Into<String>,
) {
    problems.push(SettingsProblem {
        field: field.to_owned(),
        message: message.into(),
    });
}

impl ConnectorSettings {
    /// A well-known port set with the other TLS mode: 465 is implicit TLS (TLS from the
    /// first byte), 587 plain text upgraded by STARTTLS. Either mismatch ends in a greeting
    /// that never comes or a failed handshake, so it is said before anything is sent.
    fn port_tls_problem(&self) -> Option<String> {
        let port = self.smtp_port?;
        let mode = self.smtp_tls_mode();
        let chosen_by = match self.smtp_tls {
            Some(_) => "`smtp_tls`",
            None => "Use SSL (`use_ssl`)",
        };
        match (port, mode) {
            (465, SmtpTls::Starttls | SmtpTls::None) => Some(format!(
                "SMTP port (`smtp_port`) 465 is the implicit-TLS port (TLS from the first byte), \
                 but {chosen_by} chooses `{}`: for port 465 set `smtp_tls = \"implicit\"` (or \
                 leave `smtp_tls` unset with Use SSL, `use_ssl = true`), or use port 587 with \
                 STARTTLS",
                mode.as_str()
            )),
            (587, SmtpTls::Implicit) => Some(
                "SMTP port (`smtp_port`) 587 starts in plain text and switches to TLS by \
                 STARTTLS, but `smtp_tls` chooses `implicit`: for port 587 set `smtp_tls = \
                 \"starttls\"`, or use port 465 for implicit TLS"
                    .to_owned(),
            ),
            _ => None,
        }
    }
}

/// How a value reads as a GUID.
pub(super) enum GuidForm {
    /// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, as the portal shows it and Entra ID takes it.
    Canonical,
    /// A GUID in another form (braces, `urn:uuid:`, no hyphens), here in the canonical one:
    /// Entra ID would refuse it in a token request.
    Other(String),
    /// No GUID at all.
    NotGuid,
}

pub(super) fn guid_form(value: &str) -> GuidForm {
    match uuid::Uuid::parse_str(value) {
        Ok(_) if value.len() == 36 => GuidForm::Canonical,
        Ok(guid) => GuidForm::Other(guid.hyphenated().to_string()),
        Err(_) => GuidForm::NotGuid,
    }
}

pub(super) fn tenant_problem(tenant: &str) -> Option<String> {
    let lower = tenant.to_ascii_lowercase();
    if matches!(lower.as_str(), "common" | "organizations" | "consumers") {
        return Some(format!(
            "Tenant ID (`tenant_id`) `{tenant}` cannot be used for app-only sign-in: use the Directory (tenant) ID GUID or the tenant's domain"
        ));
    }
    let is_domain = tenant.contains('.')
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    match guid_form(tenant) {
        GuidForm::Canonical => None,
        GuidForm::Other(canonical) => Some(format!(
            "Tenant ID (`tenant_id`) `{tenant}` is a GUID in a form Entra ID does not take: \
             write it as `{canonical}`, as the app registration's Overview page shows it"
        )),
        GuidForm::NotGuid if is_domain => None,
        GuidForm::NotGuid => Some(format!(
            "Tenant ID (`tenant_id`) `{tenant}` is neither a GUID nor a domain name: copy the Directory (tenant) ID from the app registration's Overview page"
        )),
    }
}

/// A login or Graph host (`authority_host`, `graph_endpoint`, or `AZURE_AUTHORITY_HOST` from
/// the environment): a URL as [`https_url`] takes it, without the path the crate adds (a
/// login host's path naming `tenant`, when given, included).
pub(super) fn check_url(
    problems: &mut Vec<SettingsProblem>,
    field: &str,
    label: &str,
    value: Option<&str>,
    tenant: Option<&str>,
) {
    let Some(value) = non_blank(value) else {
        return;
    };
    match https_url(field, label, value) {
        Err(Error::InvalidSettings {
            problems: found, ..
        }) => problems.extend(found),
        Err(_) => {}
        Ok(url) => {
            let message = path_problem(field, label, &url).or_else(|| {
                // Behind a proxy's prefix, a domain is a tenant only when it is this one.
                let tenant = non_blank(tenant)?;
                (field != "graph_endpoint"
                    && path_segments(&url).any(|s| s.eq_ignore_ascii_case(tenant)))
                .then(|| tenant_path_message(field, label, &url))
            });
            if let Some(message) = message {
                problem(problems, field, message);
            }
        }
    }
}

/// Every cloud, for the hosts Microsoft runs in each.
const CLOUDS: [Cloud; 4] = [Cloud::Global, Cloud::UsGov, Cloud::UsDod, Cloud::China];

/// Older names of Microsoft's login hosts, still written in configurations (MSAL knows them
/// as aliases of the clouds' own).
const LOGIN_HOST_ALIASES: [&str; 4] = [
    "login.microsoft.com",
    "login.windows.net",
    "login.usgovcloudapi.net",
    "login.chinacloudapi.cn",
];

/// Whether `url`'s host is one Microsoft runs: a cloud's own (`host_of`) or an alias.
fn is_microsoft_host(url: &url::Url, host_of: fn(Cloud) -> &'static str, aliases: &[&str]) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    CLOUDS
        .iter()
        .filter_map(|cloud| host_of(*cloud).strip_prefix("https://"))
        .chain(aliases.iter().copied())
        .any(|known| known.eq_ignore_ascii_case(host))
}

fn path_segments(url: &url::Url) -> impl Iterator<Item = &str> {
    url.path_segments()
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
}

fn tenant_path_message(field: &str, label: &str, url: &url::Url) -> String {
    // A variable is fixed where it is set, or overridden by the setting.
    let or_setting = match field {
        "authority_host" => "",
        _ => {
            " (or set Authority host (`authority_host`) in the settings, which wins over the \
             variable)"
        }
    };
    format!(
        "{label} (`{field}`) `{url}` has a tenant or token path in it: give the login host \
         only, e.g. `https://login.microsoftonline.com`{or_setting}; the tenant goes in Tenant \
         ID (`tenant_id`)"
    )
}

/// A login or Graph host given with the path the crate adds itself — the authority as MSAL
/// and the portal write it (`…/{tenant}`, or the whole token URL), Graph Explorer's
/// `…/v1.0` — which would make requests to `…/{tenant}/{tenant}/…` or `…/v1.0/v1.0/…`
/// that fail far from the setting.
///
/// A proxy's or gateway's own path prefix is left alone, even when it looks like a host
/// (`https://egress.example/login.microsoftonline.com`) or a version (`…/aad/v2.0`,
/// `https://gw.example/beta`). Microsoft's own login and Graph hosts have no prefix, so on
/// them a path is the mistake; elsewhere only what cannot be a prefix is: an `oauth2`
/// segment, a tenant GUID, `common` / `organizations` / `consumers`, an
/// `….onmicrosoft.*` domain, and Graph's `/v1.0` at the end. (The settings' own
/// `tenant_id` in the path is caught by the caller, which knows it.)
fn path_problem(field: &str, label: &str, url: &url::Url) -> Option<String> {
    let segments: Vec<&str> = path_segments(url).collect();
    let last = *segments.last()?;
    match field {
        "authority_host" | "AZURE_AUTHORITY_HOST" => {
            let is_tenant = |segment: &str| {
                let lower = segment.to_ascii_lowercase();
                !matches!(guid_form(segment), GuidForm::NotGuid)
                    || matches!(lower.as_str(), "common" | "organizations" | "consumers")
                    || lower.contains(".onmicrosoft.")
            };
            let tenant_or_token =
                is_microsoft_host(url, Cloud::authority_host, &LOGIN_HOST_ALIASES)
                    || segments.iter().any(|s| s.eq_ignore_ascii_case("oauth2"))
                    || segments.iter().copied().any(is_tenant);
            tenant_or_token.then(|| tenant_path_message(field, label, url))
        }
        "graph_endpoint" => {
            let on_graph = is_microsoft_host(url, Cloud::graph_endpoint, &[]);
            let version = if on_graph { segments[0] } else { last };
            let is_version = version.eq_ignore_ascii_case("v1.0")
                || (on_graph && version.eq_ignore_ascii_case("beta"));
            is_version.then(|| {
                format!(
                    "{label} (`{field}`) `{url}` has the API version `/{version}` in it: give \
                     the Graph host only, e.g. `https://graph.microsoft.com`, or a proxy's own \
                     prefix; the crate adds `/v1.0`"
                )
            })
        }
        _ => None,
    }
}
