//! Host classification shared by the settings and the transports: which hosts are this
//! machine, where plain-text connections are allowed.

use crate::error::{Error, Result};

/// Microsoft Entra ID's login host in the global cloud: the settings' `cloud = "global"` and
/// the credentials' default alike.
pub(crate) const GLOBAL_LOGIN_HOST: &str = "https://login.microsoftonline.com";

/// Microsoft Graph in the global cloud, which is also the resource its tokens are for.
pub(crate) const GLOBAL_GRAPH_HOST: &str = "https://graph.microsoft.com";

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

/// Parses a service URL (`authority_host`, `graph_endpoint`): `https`, or plain `http` for
/// this machine only, and never with a user name or password in it (they would be written
/// out with the settings and shown in logs). The one place that rule lives.
///
/// # Errors
///
/// [`Error::InvalidSettings`] naming `field` when `value` is not such a URL.
pub(crate) fn https_url(field: &str, label: &str, value: &str) -> Result<url::Url> {
    let trimmed = value.trim();
    let value = without_userinfo(trimmed);
    match url::Url::parse(trimmed) {
        Ok(url) if has_userinfo(&url) => Err(userinfo_problem(field, label)),
        Ok(url) if url.scheme() == "https" => Ok(url),
        Ok(url) if url.scheme() == "http" && is_loopback(&url) => Ok(url),
        Ok(_) => Err(Error::settings(
            field,
            format!(
                "{label} (`{field}`) `{value}` must use https (plain http is allowed only for \
                 loopback: 127.0.0.0/8, ::1, localhost)"
            ),
        )),
        // A password with a `/`, `?` or `#` in it breaks the parse: say what is wrong.
        Err(_) if value != trimmed => Err(userinfo_problem(field, label)),
        Err(e) => Err(Error::settings(
            field,
            format!(
                "{label} (`{field}`) `{value}` is not a URL ({e}); write e.g. `https://host.example`"
            ),
        )),
    }
}

/// Parses a managed-identity endpoint (`managed_identity_endpoint`, `IDENTITY_ENDPOINT`):
/// `https`, or plain `http` to this machine or a link-local address only (the instance
/// metadata service is `http://169.254.169.254`; App Service's endpoint is on localhost),
/// without a user name or password. The one place that rule lives.
///
/// # Errors
///
/// [`Error::InvalidSettings`] naming `field` when `value` is not such a URL.
pub(crate) fn local_service_url(field: &str, label: &str, value: &str) -> Result<url::Url> {
    let trimmed = value.trim();
    let value = without_userinfo(trimmed);
    match url::Url::parse(trimmed) {
        Ok(url) if has_userinfo(&url) => Err(userinfo_problem(field, label)),
        Ok(url) if url.scheme() == "https" => Ok(url),
        Ok(url) if url.scheme() == "http" && (is_loopback(&url) || is_link_local(&url)) => Ok(url),
        Ok(_) => Err(Error::settings(
            field,
            format!(
                "{label} (`{field}`) `{value}` must use https (plain http is allowed only for \
                 loopback (127.0.0.0/8, ::1, localhost) and link-local addresses such as \
                 169.254.169.254)"
            ),
        )),
        Err(_) if value != trimmed => Err(userinfo_problem(field, label)),
        Err(e) => Err(Error::settings(
            field,
            format!(
                "{label} (`{field}`) `{value}` is not a URL ({e}); write e.g. \
                 `http://169.254.169.254/metadata/identity/oauth2/token`"
            ),
        )),
    }
}

/// Whether a URL carries credentials (`https://user:password@host`).
fn has_userinfo(url: &url::Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

/// A URL with credentials in it, refused without quoting it: the password is a secret.
fn userinfo_problem(field: &str, label: &str) -> Error {
    Error::settings(
        field,
        format!(
            "{label} (`{field}`) contains a user name or password (`user:password@`): remove \
             the credentials from the URL; the connector signs in with its own settings, and \
             a URL is written out with the settings and shown in logs"
        ),
    )
}

/// `value` to quote in an error or a summary: everything from after the scheme to the last
/// `@` replaced by `…@`, also in text that is not a valid URL and in a bare host. Not only
/// up to the first `/`, `?` or `#`: a password may hold those, which end the host part only
/// in a well-formed URL. (An `@` in a path hides a little more than needed.)
pub(crate) fn without_userinfo(value: &str) -> String {
    let (scheme, rest) = value
        .find("://")
        .map_or(("", value), |at| value.split_at(at + 3));
    match rest.rfind('@') {
        Some(at) => format!("{scheme}…@{}", &rest[at + 1..]),
        None => value.to_owned(),
    }
}

/// Whether a URL's host is a link-local address (`169.254.0.0/16`, `fe80::/10`).
pub(crate) fn is_link_local(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_link_local(),
        Some(url::Host::Ipv6(ip)) => ip.is_unicast_link_local(),
        _ => false,
    }
}

/// `host:port` as a socket address is written, for messages: an IPv6 literal in brackets
/// (`[2001:db8::25]:587`), or its last group would read as the port. The one place this
/// rule lives; `host` may already be in brackets.
pub(crate) fn host_port(host: &str, port: u16) -> String {
    match ipv6_host(host) {
        Some(address) => format!("[{address}]:{port}"),
        None => format!("{host}:{port}"),
    }
}

/// An IPv6 address given as an SMTP host, bare or in brackets as a URL writes it: the
/// address alone, which is what a connection is made to.
pub(crate) fn ipv6_host(host: &str) -> Option<&str> {
    let inner = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    inner.parse::<std::net::Ipv6Addr>().is_ok().then_some(inner)
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
    fn host_port_brackets_an_ipv6_address_only() {
        for (host, expected) in [
            ("2001:db8::25", "[2001:db8::25]:587"),
            ("[2001:db8::25]", "[2001:db8::25]:587"),
            ("::1", "[::1]:587"),
            ("smtp.office365.com", "smtp.office365.com:587"),
            ("192.0.2.25", "192.0.2.25:587"),
        ] {
            assert_eq!(host_port(host, 587), expected);
        }
    }

    /// A URL's host is in brackets already; it gets no second pair.
    #[cfg(feature = "oauth")]
    #[test]
    fn a_url_host_port_is_bracketed_once() {
        assert_eq!(crate::http::host_of("http://[::1]:8080/v1.0"), "[::1]:8080");
        assert_eq!(
            crate::http::host_of("https://graph.microsoft.com:443"),
            "graph.microsoft.com"
        );
    }

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

    #[test]
    fn urls_with_credentials_are_refused_without_quoting_them() {
        for url in [
            "https://admin:hunter2-pw@graph.example",
            "https://admin@graph.example/v1.0",
            "http://:hunter2-pw@127.0.0.1:8080",
            "ftp://admin:hunter2-pw@graph.example",
            "https://admin:hunter2-pw@gra ph.example",
        ] {
            for result in [
                https_url("graph_endpoint", "Graph endpoint", url),
                local_service_url("graph_endpoint", "Graph endpoint", url),
            ] {
                let error = result.unwrap_err();
                let shown = format!("{error} {error:?} {:?}", error.remedy());
                assert!(shown.contains("`graph_endpoint`"), "{shown}");
                assert!(!shown.contains("hunter2"), "{shown}");
                assert!(!shown.contains("admin"), "{shown}");
            }
        }
        // Up to the last `@`: a password may hold `/`, `?` or `#`; an `@` in a path hides a
        // little more than needed, never less.
        assert_eq!(
            without_userinfo("https://a:pa/ss?x#y@host/x"),
            "https://…@host/x"
        );
        assert_eq!(without_userinfo("a:pa/ss@smtp.example"), "…@smtp.example");
        assert_eq!(without_userinfo("https://a:b@host/x@y"), "https://…@y");
        assert_eq!(without_userinfo("https://host/x"), "https://host/x");
    }

    #[cfg(feature = "oauth")]
    #[test]
    fn local_service_urls_allow_http_to_loopback_and_link_local_only() {
        for ok in [
            "http://169.254.169.254/metadata/identity/oauth2/token",
            "http://127.0.0.1:41000/msi/token",
            "http://localhost:8081/msi/token",
            "http://[fe80::1]/token",
            "https://identity.example/token",
        ] {
            assert!(local_service_url("f", "F", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1/token",
            "http://example.org/token",
            "ftp://127.0.0.1",
            "nope",
        ] {
            let error = local_service_url("managed_identity_endpoint", "F", bad).unwrap_err();
            assert!(
                error.to_string().contains("`managed_identity_endpoint`"),
                "{error}"
            );
        }
    }
}
