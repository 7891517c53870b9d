//! What each admin-screen field is called and where its value comes from, for the "required"
//! messages that the settings' validation and the standalone builders both give. One text per
//! field, so the two can never drift apart.

/// `tenant_id` is missing; `when` says for what, e.g. `when Authentication Mode is OAuth`.
pub(crate) fn tenant_id_required(when: &str) -> String {
    format!(
        "Tenant ID (`tenant_id`) is required {when}: copy the Directory (tenant) ID from the app \
         registration's Overview page"
    )
}

/// `oauth_client_id` is missing.
pub(crate) fn client_id_required(when: &str) -> String {
    format!(
        "OAuth Client ID (`oauth_client_id`) is required {when}: copy the Application (client) \
         ID from the app registration's Overview page"
    )
}

/// `password` is missing for basic authentication.
pub(crate) const PASSWORD_REQUIRED: &str =
    "Password (`password`) is required when Authentication Mode is basic";

/// `user_name` is missing for basic authentication.
#[cfg(feature = "oauth")]
pub(crate) const BASIC_USER_REQUIRED: &str =
    "User Name (`user_name`) is required when Authentication Mode is basic";
