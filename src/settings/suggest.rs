//! Did-you-mean for settings keys: the known key nearest to a misspelt one, for unknown
//! file keys (refused) and unknown `MAIL_CONNECTOR_*` variables (warned about).

use super::env::KEYS;

/// serde's "unknown field `tennant_id`, expected one of `enabled`, …" becomes "unknown
/// field `tennant_id`; did you mean `tenant_id`?" when a known key is near enough.
pub(super) fn suggest_for_unknown_field(message: String) -> String {
    const MARK: &str = "unknown field `";
    let Some(start) = message.find(MARK).map(|at| at + MARK.len()) else {
        return message;
    };
    let Some(len) = message[start..].find('`') else {
        return message;
    };
    let name = &message[start..start + len];
    match closest_key(name) {
        Some(key) => format!("{}; did you mean `{key}`?", &message[..start + len + 1]),
        None => message,
    }
}

/// The known key nearest to `name` (a misspelling, a missing or extra part), if any is
/// near enough to be the one meant.
pub(super) fn closest_key(name: &str) -> Option<&'static str> {
    let name = name.to_ascii_lowercase();
    let most = (name.chars().count() / 3).max(2);
    KEYS.iter()
        .map(|(key, _)| (*key, edit_distance(&name, key)))
        .filter(|(key, distance)| {
            *distance <= most
                || (name.len() >= 4 && (key.starts_with(name.as_str()) || name.starts_with(key)))
        })
        .min_by_key(|(_, distance)| *distance)
        .map(|(key, _)| key)
}

/// Levenshtein distance: insertions, deletions and substitutions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_keys_are_suggested_and_far_ones_are_not() {
        assert_eq!(closest_key("tennant_id"), Some("tenant_id"));
        assert_eq!(closest_key("TENANT"), Some("tenant_id"));
        assert_eq!(closest_key("client_secrets"), Some("client_secret"));
        assert_eq!(closest_key("smtp_hots"), Some("smtp_host"));
        assert_eq!(closest_key("colour"), Some("cloud"));
        assert_eq!(closest_key("verbose"), None);
        assert_eq!(closest_key("x"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        // Deleting every letter of the name, from the first, costs one each.
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("xtls", "tls"), 1);
    }

    #[test]
    fn an_unknown_field_gets_a_suggestion_in_place_of_the_list() {
        let message = "line 1: unknown field `tennant_id`, expected one of `enabled`, `auth_mode`";
        assert_eq!(
            suggest_for_unknown_field(message.to_owned()),
            "line 1: unknown field `tennant_id`; did you mean `tenant_id`?"
        );
        let far = "unknown field `zzzzzzzz`, expected one of `enabled`";
        assert_eq!(suggest_for_unknown_field(far.to_owned()), far);
    }
}
