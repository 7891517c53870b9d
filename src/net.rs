//! Host classification shared by the settings and the transports: which hosts are this
//! machine, where plain-text connections are allowed.

use crate::error::{Error, Result};

/// The SMTP submission port for a TLS mode: 465 for implicit TLS, 587 (submission with
/// STARTTLS, or none) otherwise. The one place this default lives.
pub(crate) fn default_smtp_port(implicit_tls: bool) -> u16 {
    if implicit_tls { 465 } else { 587 }
}

/// Why credentials must not go to `host` over a connection without TLS, unless the host is
/// this machine or the caller set `smtp_allow_plaintext_credentials_dangerous`. The one place
/// this rule lives; callers check first that there are credentials and no TLS.
pub(crate) fn plaintext_credentials_problem(host: &str, allowed_dangerous: bool) -> Option<String> {
    (!allowed_dangerous && !host.is_empty() && !is_loopback_host(host)).then(|| {
        format!(
            "SMTP without TLS (`use_ssl = false` or `smtp_tls = \"none\"`) would send the \
             credentials unencrypted to `{host}`: turn Use SSL (`use_ssl`) on, or set \
             `smtp_allow_plaintext_credentials_dangerous = true` only on a network you trust"
        )
    })
}

/// Parses a managed identity endpoint: `https`, or plain `http` to this machine or a
/// link-local address (the Instance Metadata Service is `http://169.254.169.254`; App Service
/// gives a local `http` URL). Nothing else may receive a request for the identity's token.
///
/// # Errors
///
/// [`Error::InvalidSettings`] naming `managed_identity_endpoint`.
pub(crate) fn identity_endpoint_url(value: &str) -> Result<url::Url> {
    let field = "managed_identity_endpoint";
    let value = value.trim();
    let bad = |why: String| {
        Error::settings(
            field,
            format!("Managed identity endpoint (`{field}`) `{value}` {why}"),
        )
    };
    let url = url::Url::parse(value).map_err(|e| bad(format!("is not a URL ({e})")))?;
    let local = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_link_local(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || ip.is_unicast_link_local(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if local => Ok(url),
        _ => Err(bad(
            "must use https (plain http only to this machine or a link-local address such as \
             169.254.169.254)"
                .to_owned(),
        )),
    }
}

/// Parses a service URL (`authority_host`, `graph_endpoint`): `https`, or plain `http` for
/// this machine only. The one place that rule lives.
///
/// # Errors
///
/// [`Error::InvalidSettings`] naming `field` when `value` is not such a URL.
pub(crate) fn https_url(field: &str, label: &str, value: &str) -> Result<url::Url> {
    let value = value.trim();
    match url::Url::parse(value) {
        Ok(url) if url.scheme() == "https" => Ok(url),
        Ok(url) if url.scheme() == "http" && is_loopback(&url) => Ok(url),
        Ok(_) => Err(Error::settings(
            field,
            format!(
                "{label} (`{field}`) `{value}` must use https (plain http is allowed only for localhost)"
            ),
        )),
        Err(e) => Err(Error::settings(
            field,
            format!(
                "{label} (`{field}`) `{value}` is not a URL ({e}); write e.g. `https://host.example`"
            ),
        )),
    }
}

/// Whether an SMTP host name is this machine: `localhost` or a loopback address.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a URL's host is this machine: `localhost` or a loopback address.
pub(crate) fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        for (url, expected) in [
            ("http://localhost:1", true),
            ("http://127.0.0.1", true),
            ("http://[::1]:80", true),
            ("http://example.org", false),
        ] {
            assert_eq!(
                is_loopback(&url::Url::parse(url).unwrap()),
                expected,
                "{url}"
            );
        }
    }
}
