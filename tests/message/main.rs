//! The message model and its MIME rendering: builder validation, header injection, hostile
//! input on the wire, addresses, and many recipients.

#[path = "../support/mod.rs"]
mod support;

#[cfg(feature = "smtp")]
#[path = "../support/lenient_smtp.rs"]
mod lenient_smtp;

mod addresses;
mod builder;
mod headers;
mod many_recipients;
mod mime;
mod prepared;
mod serde_form;
