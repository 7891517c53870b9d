//! Issue 8, item 8: errors about malformed settings never quote any part of a value — any
//! line may hold a secret — but still say where the problem is.

use crate::support::assert_no_secrets;
use mail_connector::{ConnectorSettings, Error};

/// Pieces of the secrets below; none may appear in any error output.
const PIECES: &[&str] = &[
    "s3cr3tA", "s3cr3tB", "s3cr3tC", "Zq8~", "98765", "4321", "hunter",
];

fn assert_no_secret(input: &str, error: &Error) {
    let printed = format!("{error} {error:?} {:?}", error.remedy());
    // The input holds the secrets: shown only on failure, where the panic names the piece.
    eprintln!("input: {input:?}");
    assert_no_secrets(&printed, PIECES);
}

fn toml_error(input: &str) -> Error {
    match ConnectorSettings::from_toml_str(input) {
        Ok(_) => panic!("{input:?} parsed"),
        Err(error) => error,
    }
}

fn json_error(input: &str) -> Error {
    match ConnectorSettings::from_json_str(input) {
        Ok(_) => panic!("{input:?} parsed"),
        Err(error) => error,
    }
}

const TOML: &[&str] = &[
    // The case: a multi-line password with `=`, and an error inside it.
    "auth_mode = \"basic\"\npassword = \"\"\"first s3cr3tA=\nsecond s3cr3tB=x \\q s3cr3tC\"\"\"\n",
    "password = \"\"\"s3cr3tA=\ns3cr3tB = \"x\"\n",
    "client_secret = '''s3cr3tA\ns3cr3tB=s3cr3tC\n",
    "client_secret = \"s3cr3tA=\\q\"\n",
    "password = s3cr3tA=s3cr3tB\n",
    "password = \"s3cr3tA'\n",
    "password = \"s3cr3t\\\"A\" s3cr3tB\n",
    "client_secret = [\"s3cr3tA\"]\n",
    "client_secret = 98765.4321\n",
    "password = \"s3cr3tA\ns3cr3tB = 1\"\n",
    "password = { s3cr3tA = \"s3cr3tB\" }\n",
    "client_secret = \"Zq8~s3cr3tA\"\nclient_secret = \"Zq8~s3cr3tB\"\n",
    "auth_mode = \"Zq8~s3cr3tA\"\n",
    "recipient_limit = \"hunter2=s3cr3tA\"\n",
    "use_ssl = \"s3cr3tA\"\n",
];

const JSON: &[&str] = &[
    "{\"password\": \"s3cr3tA\\q\"}",
    "{\"password\": s3cr3tA}",
    "{\"client_secret\": 98765.4321}",
    "{\"client_secret\": [\"s3cr3tA\"]}",
    "{\"password\": \"s3cr3tA",
    "{\"password\": \"s3cr3tA\ns3cr3tB\"}",
    "{\"client_secret\": {\"s3cr3tA\": 1}}",
    "{\"password\": \"s3cr3tA\", \"password\": \"s3cr3tB\"}",
    "{\"auth_mode\": \"Zq8~s3cr3tA=\"}",
    "{\"smtp_port\": \"hunter2\"}",
    "{\"password\": \"s3cr3tA\" \"client_secret\": \"s3cr3tB\"}",
    // A value of the wrong type is quoted in Rust's escaped form: its `\"` is not its end.
    "{\"smtp_port\": \"hunter\\\"s3cr3tA\\\\s3cr3tB\"}",
    // An unknown key not shaped like a key (a secret pasted as one) is not shown.
    "{\"hunter2~s3cr3tA\": 1}",
];

#[test]
fn toml_errors_quote_no_value() {
    for input in TOML {
        assert_no_secret(input, &toml_error(input));
    }
}

#[test]
fn json_errors_quote_no_value() {
    for input in JSON {
        assert_no_secret(input, &json_error(input));
    }
}

#[test]
fn files_and_files_with_environment_quote_no_value() {
    let dir = tempfile::tempdir().unwrap();
    for (index, input) in TOML.iter().enumerate() {
        let path = dir.path().join(format!("{index}.toml"));
        std::fs::write(&path, input).unwrap();
        let error = ConnectorSettings::from_file(&path).unwrap_err();
        assert_no_secret(input, &error);
        let error = ConnectorSettings::from_file_with_env(&path).unwrap_err();
        assert_no_secret(input, &error);
    }
    for (index, input) in JSON.iter().enumerate() {
        let path = dir.path().join(format!("{index}.json"));
        std::fs::write(&path, input).unwrap();
        let error = ConnectorSettings::from_file(&path).unwrap_err();
        assert_no_secret(input, &error);
    }
}

#[test]
fn errors_still_say_where_and_which_key() {
    let text = toml_error(TOML[0]).to_string();
    assert!(text.contains("line 3"), "{text}");
    assert!(text.contains("column"), "{text}");
    assert!(text.contains("in the value of `password`"), "{text}");
    let text = toml_error("recipient_limit = \"ten\"\n").to_string();
    // The column of the value, counted from 1, and its key, on that very line.
    assert!(
        text.contains("line 1, column 19, key `recipient_limit`:"),
        "{text}"
    );
    assert!(text.contains("`recipient_limit`"), "{text}");
    let text = json_error(JSON[0]).to_string();
    assert!(text.contains("line 1 column"), "{text}");
    // A misspelt key is a key, not a value: it is still named.
    let text = toml_error("tennant_id = \"x\"").to_string();
    assert!(text.contains("tennant_id"), "{text}");
    let text = json_error("{\"tennant_id\": \"x\"}").to_string();
    assert!(text.contains("tennant_id"), "{text}");
    // The settings' own choices are still listed.
    let text = json_error("{\"cloud\": \"mars\"}").to_string();
    assert!(text.contains("global, us-gov, us-dod, china"), "{text}");
    // A choice ending in a backslash is one value still: the choices after it are listed.
    let text = json_error("{\"cloud\": \"mars\\\\\"}").to_string();
    assert!(text.contains("global, us-gov, us-dod, china"), "{text}");
}

/// A known key in another case (`Tenant_ID`) is an unknown key: named by its own line, with
/// the key meant, and never as "the value of" the key above it — a secret's, here, which
/// would send the admin to a value that is fine.
#[test]
fn a_miscased_key_is_named_by_its_own_line() {
    let input = "user_name = \"a@example.org\"\nclient_secret = \"s3cr3tA=\"\nTenant_ID = \"x\"\n";
    let error = toml_error(input);
    let text = error.to_string();
    assert!(text.contains("the key on line 3"), "{text}");
    assert!(text.contains("did you mean `tenant_id`?"), "{text}");
    assert!(!text.contains("in the value of"), "{text}");
    assert!(!text.contains("client_secret"), "{text}");
    assert_no_secret(input, &error);
    // The same from a file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mail.toml");
    std::fs::write(&path, input).unwrap();
    let error = ConnectorSettings::from_file(&path).unwrap_err();
    assert!(error.to_string().contains("the key on line 3"), "{error}");
    assert_no_secret(input, &error);
}
