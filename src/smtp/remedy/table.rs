//! The table of remedies: an SMTP failure (stage, reply code, enhanced code, text,
//! mechanism) mapped to what the admin should change.

use super::exchange::{
    BASIC_RETIRED, PASSWORD, XOAUTH2_REFUSED, auth_refused, sending_limit_remedy,
};
use super::{
    CERT_ISSUER, CERT_NAME, CERT_TIME, PASSWORD_TRANSITION, contains, is_login_challenge,
    is_token_challenge, is_xoauth2, reply_is_transient,
};
use crate::error::SmtpStage;
use crate::smtp::tls_mode::{IMPLICIT_TLS_PORT, NO_STARTTLS, NO_TLS_MODE, PLAIN_SMTP_PORT};

/// What the admin should change, for an SMTP failure.
pub(super) fn remedy(
    stage: SmtpStage,
    code: Option<u16>,
    enhanced: Option<&str>,
    message: &str,
    mechanism: Option<&str>,
) -> Option<String> {
    let xoauth2 = is_xoauth2(mechanism);
    let remedy = if enhanced == Some("5.7.139") || contains(message, "SmtpClientAuthentication") {
        auth_refused(message, xoauth2)
    } else if enhanced == Some("5.7.30")
        || contains(message, "Basic authentication is not supported")
    {
        BASIC_RETIRED.to_owned()
    } else if enhanced == Some("5.1.8") || contains(message, "bad outbound sender") {
        "Exchange Online has blocked the sending mailbox (User Name, `user_name`) from \
         sending, usually after it sent spam (a compromised account): secure the account, then \
         have an admin release it in Microsoft Defender (Email & collaboration → Review → \
         Restricted entities)"
            .to_owned()
    } else if enhanced == Some("5.2.252")
        || contains(message, "SendAsDenied")
        || contains(message, "not allowed to send as")
        || (stage == SmtpStage::Data
            && (enhanced == Some("5.7.60")
                || contains(message, "permissions to send as this sender")))
    {
        // Also Exchange's `5.7.60` after the data: the From header, not the envelope.
        "the mailbox in User Name (`user_name`) may not send as the email's From address: send \
         from `user_name` itself, or grant it Send As on the other address with \
         `Add-RecipientPermission -Identity <from address> -Trustee <user_name> -AccessRights \
         SendAs`"
            .to_owned()
    } else if enhanced == Some("5.7.60") || contains(message, "permissions to send as this sender")
    {
        // Exchange Online's reply to a `MAIL FROM` the account that logged in may not use.
        "the account that logs in (User Name, `user_name`) may not send as the envelope sender \
         (`MAIL FROM`). When the transport's `sender` is another mailbox, leave `sender` unset \
         so that mail goes from `user_name`, or grant the account Send As on that address with \
         `Add-RecipientPermission -Identity <sender address> -Trustee <user_name> \
         -AccessRights SendAs`. When the sender is `user_name` itself (every transport made \
         from settings), the sign-in name is not an email address of the mailbox (a user \
         principal name apart from its primary SMTP address): set User Name to the mailbox's \
         primary SMTP address, or add the sign-in name to the mailbox's email addresses"
            .to_owned()
    } else if let Some(remedy) = sending_limit_remedy(enhanced, message) {
        remedy
    } else if (code == Some(535) || (code.is_none() && is_token_challenge(message))) && xoauth2 {
        XOAUTH2_REFUSED.to_owned()
    } else if code == Some(535) && enhanced == Some("5.7.3") {
        format!(
            "{PASSWORD}; if they are right, SMTP AUTH may be disabled for the mailbox: \
             enable it with `Set-CASMailbox -Identity <user_name> \
             -SmtpClientAuthenticationDisabled $false`"
        )
    } else if code == Some(535) || (stage == SmtpStage::Auth && enhanced == Some("5.7.8")) {
        PASSWORD.to_owned()
    } else if enhanced == Some(PASSWORD_TRANSITION) {
        "the server wants this account's password changed before it accepts it (a password \
         transition, `4.7.12`): change the mailbox's password, then update Password \
         (`password`); trying again does not help"
            .to_owned()
    } else if code == Some(432)
        || (code.is_none_or(|c| c < 500)
            && (contains(message, "concurrent") || contains(message, "thread limit exceeded")))
    {
        "the mailbox has too many simultaneous SMTP connections (Exchange Online allows 3 per \
         mailbox): share one transport per mailbox and keep its connection limit at 3 or \
         below; the send is retried automatically"
            .to_owned()
    } else if enhanced == Some("4.3.2") {
        "the server is not accepting mail for now (maintenance or load): the send is retried \
         automatically; if it lasts, check the service's health (for Exchange Online, Service \
         health in the Microsoft 365 admin center)"
            .to_owned()
    } else if code == Some(530) && contains(message, "STARTTLS") {
        "the server accepts mail only over TLS: set Use SSL (`use_ssl = true`) or \
         `smtp_tls = \"starttls\"` (`smtp_tls = \"none\"` is for a server on this machine only)"
            .to_owned()
    } else if code == Some(530) {
        "the server requires authentication: set Authentication Mode (`auth_mode`) to `basic` \
         or `oauth`"
            .to_owned()
    } else if code == Some(534) || code == Some(538) {
        "the server wants a stronger mechanism or an encrypted connection: set Use SSL \
         (`use_ssl = true`) or `smtp_tls = \"starttls\"`"
            .to_owned()
    } else if code.is_none() && contains(message, PLAIN_SMTP_PORT) {
        "this port speaks SMTP in plain text first and offers TLS by STARTTLS (usually port 587, \
         or 25), not implicit TLS: set `smtp_tls = \"starttls\"` (or Use SSL, `use_ssl = true`, \
         with `smtp_port = 587`), or set `smtp_port` to the server's implicit-TLS port \
         (usually 465)"
            .to_owned()
    } else if code.is_none() && contains(message, IMPLICIT_TLS_PORT) {
        // The other way out depends on the mode in use: keep STARTTLS, or leave plain text.
        let other_port = if contains(message, NO_TLS_MODE) {
            "set `smtp_port` to the server's plain SMTP port (usually 587 or 25) and set \
             `smtp_tls = \"starttls\"` there (`smtp_tls = \"none\"` only for a server on this \
             machine)"
        } else {
            "set `smtp_port` to the server's STARTTLS port (usually 587) and keep \
             `smtp_tls = \"starttls\"`"
        };
        format!(
            "this port expects TLS from the first byte (implicit TLS, usually port 465): set \
             `smtp_tls = \"implicit\"` (or Use SSL, `use_ssl = true`, with `smtp_port = 465`), \
             or {other_port}"
        )
    } else if code.is_none() && stage == SmtpStage::Auth && contains(message, "no answer from") {
        // The server greeted and answered EHLO (and STARTTLS): the port and TLS mode are
        // right. Servers hold the answer to a failed login to slow down guessing.
        let credentials = match xoauth2 {
            true => {
                "the token may be refused (check the app's SMTP permission and its access \
                     to the mailbox in User Name, `user_name`)"
            }
            false => {
                "the password may be wrong (check User Name, `user_name`, and Password, \
                      `password`)"
            }
        };
        format!(
            "the server answered the greeting and EHLO but not the login (AUTH) in time: a \
             server delays its answer to failed logins, so {credentials}; if they are right, \
             the server checks credentials slowly: raise the connect timeout \
             (`SmtpTransportBuilder::connect_timeout`, default 15 s)"
        )
    } else if code.is_none()
        && matches!(stage, SmtpStage::Connect | SmtpStage::Tls)
        && contains(message, "no answer from")
    {
        "the server accepted the connection but did not answer: check that the port \
         (`smtp_port`) matches the TLS mode — 587 (or 25) with STARTTLS, 465 with implicit TLS \
         (`use_ssl`, `smtp_tls`); a plaintext or STARTTLS client on an implicit-TLS port waits \
         for a greeting that never comes — and that no firewall or proxy holds the connection"
            .to_owned()
    } else if code.is_none() && (contains(message, "too long") || contains(message, "too large")) {
        "the server sent a reply far longer than SMTP allows: check that SMTP host \
         (`smtp_host`) and port (`smtp_port`) point to an SMTP server, and report the reply \
         to its administrator"
            .to_owned()
    } else if is_login_challenge(stage, code, message, mechanism) {
        format!(
            "the server answered the login (AUTH {}) with a question this connector cannot \
             answer ({message}): check that SMTP host (`smtp_host`) and port (`smtp_port`) \
             point to the mail server's submission service, and that it takes a user name and \
             password there (Authentication Mode, `auth_mode`)",
            mechanism.unwrap_or("")
        )
    } else if stage == SmtpStage::Auth
        && code.is_none()
        && (contains(message, "offers no") || contains(message, "mechanism"))
    {
        format!(
            "the server offers no authentication mechanism this connector can use ({message}): \
             check Authentication Mode (`auth_mode`); Exchange Online offers AUTH only after \
             STARTTLS, so keep Use SSL (`use_ssl`) on"
        )
    } else if stage == SmtpStage::Rcpt && matches!(enhanced, Some("5.5.3" | "4.5.3")) {
        "the message has more recipients than the server takes in one message: set Recipient \
         Limit (`recipient_limit`) to the server's limit (500 for Exchange Online), so that \
         larger lists are sent in parts"
            .to_owned()
    } else if stage == SmtpStage::Rcpt && code.is_some_and(|c| c >= 500) {
        "the server refused the recipient: check the address, or the mailbox's permission to \
         send to it"
            .to_owned()
    } else if stage == SmtpStage::Tls && contains(message, CERT_NAME) {
        "set SMTP host (`smtp_host`) to the name the server's certificate is issued for (not \
         an IP address or an alias), or have the server's certificate reissued for that name"
            .to_owned()
    } else if stage == SmtpStage::Tls && contains(message, CERT_TIME) {
        "check this machine's clock (date, time and time zone); if it is right, the server's \
         certificate has expired and its administrator must renew it"
            .to_owned()
    } else if stage == SmtpStage::Tls && contains(message, CERT_ISSUER) {
        "add the CA that issued the server's certificate (a private or self-signed one) to \
         Trusted CA file (`tls_ca_file`), as PEM; check that SMTP host (`smtp_host`) is the \
         server you mean"
            .to_owned()
    } else if stage == SmtpStage::Tls && contains(message, "after its reply to STARTTLS") {
        "the connection was tampered with, or the server is broken: it sent data in plain \
         text after agreeing to STARTTLS. Check the network path (proxies, antivirus or \
         firewalls that inspect SMTP) and the server; do not switch TLS off"
            .to_owned()
    } else if stage == SmtpStage::Tls && code.is_none() && contains(message, NO_STARTTLS) {
        // No certificate was looked at: the port, or something on the path, is the cause.
        "the server on this port does not offer encryption by STARTTLS: check that SMTP port \
         (`smtp_port`) is the server's submission port (587 for Exchange Online); if the \
         server does offer STARTTLS, a firewall or proxy on the network path (an \"SMTP \
         inspection\" feature) removes the offer, and must be told to stop; for a server that \
         speaks TLS from the first byte, set `smtp_tls = \"implicit\"` (usually port 465). Turn \
         TLS off (`smtp_tls = \"none\"`) only for a server on this machine"
            .to_owned()
    } else if stage == SmtpStage::Tls {
        "TLS failed: check that SMTP host (`smtp_host`) is the name in the server's \
         certificate, add a private CA to `tls_ca_file`, and match the port to the TLS mode \
         (587 STARTTLS, 465 implicit TLS; `use_ssl`, `smtp_tls`, `smtp_port`)"
            .to_owned()
    } else if stage == SmtpStage::Connect && code.is_none() {
        "cannot reach the SMTP server: check SMTP host (`smtp_host`) and port (`smtp_port`), \
         and that outbound connections to that port are allowed"
            .to_owned()
    } else if code.is_some_and(|c| reply_is_transient(stage, c)) {
        return None;
    } else if code == Some(552) || enhanced == Some("5.3.4") {
        "the message is too large for the server: send smaller attachments".to_owned()
    } else {
        return None;
    };
    Some(remedy)
}

#[cfg(test)]
mod branch_tests;
#[cfg(test)]
mod tests;
