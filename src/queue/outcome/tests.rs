use super::*;

fn rest(recipients: &str) -> Remainder {
    Remainder::new(Vec::new(), recipients.to_owned())
}

fn recipients(rows: &PartialRows) -> Vec<(State, &str)> {
    let kept = rows.rest.as_ref().map_or("", |r| r.recipients.as_str());
    let mut all = vec![(rows.state, kept)];
    all.extend(
        rows.splits
            .iter()
            .map(|s| (s.state, s.rest.recipients.as_str())),
    );
    all
}

/// What `classify` makes of a transient failure of attempt `attempts` of a message that
/// fell due `age` ago, under a backoff of 10 s, then 100 s, then 1,000 s (each jittered
/// down to half), at most 3 attempts and an age limit of an hour: the wait before its
/// next attempt, or the error it failed with.
async fn after_transient(
    attempts: u32,
    age: Duration,
    retry_after: Option<Duration>,
) -> Result<Duration, String> {
    let email = Email::builder().to("a@example.org").build().unwrap();
    let retry = RetryPolicy {
        max_retries: 2,
        initial_backoff: Duration::from_secs(10),
        max_backoff: Duration::from_secs(1000),
        multiplier: 10.0,
        deadline: Some(Duration::from_secs(3600)),
    };
    let now = SystemTime::now();
    let attempt = Attempt {
        email: &email,
        attempts,
        retry_from: now - age,
        now,
        retry: &retry,
    };
    let mut error = Error::transport("test", "busy", crate::Transience::Transient);
    if let Some(wait) = retry_after {
        error = error.with_retry_after(wait);
    }
    match classify(Err(error), &attempt).await {
        Outcome::Retry { at, .. } => Ok(at.duration_since(now).unwrap()),
        Outcome::Failed { error, .. } => Err(error),
        other => panic!("a transient failure became {other:?}"),
    }
}

#[tokio::test]
async fn a_transient_failure_waits_its_backoff_until_attempts_or_age_run_out() {
    let secs = Duration::from_secs;
    // The first retry waits the first backoff, the second the second.
    let first = after_transient(1, Duration::ZERO, None).await.unwrap();
    assert!((secs(5)..=secs(10)).contains(&first), "{first:?}");
    let second = after_transient(2, Duration::ZERO, None).await.unwrap();
    assert!((secs(50)..=secs(100)).contains(&second), "{second:?}");
    // Never sooner than the server asked.
    let asked = after_transient(1, Duration::ZERO, Some(secs(300))).await;
    assert_eq!(asked, Ok(secs(300)));
    // The third attempt was the last: failed, saying after how many and how long.
    let error = after_transient(3, secs(90), None).await.unwrap_err();
    assert_eq!(
        error,
        "gave up after 3 attempt(s) over 90s: test transport: busy"
    );
    // Within the age limit to the second, it is retried; past it, failed.
    let last = secs(3600 - 300);
    assert_eq!(
        after_transient(1, last, Some(secs(300))).await,
        Ok(secs(300))
    );
    let error = after_transient(1, last + secs(1), Some(secs(300)))
        .await
        .unwrap_err();
    assert!(
        error.starts_with("gave up after 1 attempt(s) over 3301s"),
        "{error}"
    );
}

/// The groups `classify` makes of a partial delivery of an email to ann, busy, gone,
/// carol and dave: who is queued again (and whether due again or failed), who is parked
/// as uncertain, who failed as refused for good (and why); or the outcome as a whole
/// when it is not split.
async fn after_partial(
    delivered: &[usize],
    uncertain: &[usize],
    not_sent: &[usize],
    refusals: &[(usize, u16, &str)],
    source: Error,
) -> Result<Groups, Outcome> {
    let email = Email::builder()
        .to("ann@example.org")
        .to("busy@example.org")
        .to("gone@example.org")
        .to("carol@example.org")
        .to("dave@example.org")
        .build()
        .unwrap();
    let all: Vec<Recipient> = email.recipients().collect();
    let pick = |which: &[usize]| which.iter().map(|&i| all[i].clone()).collect::<Vec<_>>();
    let refusals = refusals
        .iter()
        .map(|&(i, code, text)| Refusal::new(all[i].clone(), code, text))
        .collect();
    let delivered = SendReport::single(crate::SentMessage::new(pick(delivered), None));
    let error =
        Error::partial_delivery(delivered, pick(uncertain), pick(not_sent), refusals, source);
    let retry = RetryPolicy::default();
    let now = SystemTime::now();
    let attempt = Attempt {
        email: &email,
        attempts: 1,
        retry_from: now,
        now,
        retry: &retry,
    };
    match classify(Err(error), &attempt).await {
        Outcome::Partial {
            error,
            not_sent,
            uncertain,
            refused,
            ..
        } => Ok(Groups {
            not_sent: not_sent.map(|(rest, due)| (rest.recipients, due.is_some())),
            uncertain: uncertain.map(|rest| rest.recipients),
            refused: refused.map(|(rest, why)| (rest.recipients, why)),
            held: error.starts_with("held until an admin fixes this"),
        }),
        other => Err(other),
    }
}

#[derive(Debug, PartialEq)]
struct Groups {
    not_sent: Option<(String, bool)>,
    uncertain: Option<String>,
    refused: Option<(String, String)>,
    held: bool,
}

fn permanent(message: &str) -> Error {
    Error::transport("test", message, crate::Transience::Permanent)
}

#[tokio::test]
async fn a_partial_delivery_retries_only_those_a_retry_can_reach() {
    let (ann, busy, gone, carol, dave) = (0, 1, 2, 3, 4);
    let busy_now = (busy, 450, "4.2.1 Mailbox busy");
    let gone_for_good = (gone, 550, "5.1.1 User unknown");
    let for_now = || Error::transport("test", "busy", crate::Transience::Transient);
    let groups = |not_sent: Option<(&str, bool)>, uncertain: Option<&str>, held| Groups {
        not_sent: not_sent.map(|(r, due)| (r.to_owned(), due)),
        uncertain: uncertain.map(str::to_owned),
        refused: None,
        held,
    };
    // Delivered to ann; busy refused for now, gone for good: busy queued again, gone
    // failed with the server's reply.
    let mixed = after_partial(
        &[ann],
        &[],
        &[busy, gone],
        &[busy_now, gone_for_good],
        for_now(),
    )
    .await
    .unwrap();
    assert_eq!(
        mixed.not_sent,
        Some(("To: busy@example.org".to_owned(), true))
    );
    assert_eq!(
        mixed.refused,
        Some((
            "To: gone@example.org".to_owned(),
            "refused permanently by the server; sending to them again fails the same way: \
             gone@example.org: 550 5.1.1 User unknown"
                .to_owned()
        ))
    );
    assert_eq!((mixed.uncertain, mixed.held), (None, false));
    // The same with nothing delivered still splits: their fates differ.
    let none_sent = after_partial(
        &[],
        &[],
        &[busy, gone],
        &[busy_now, gone_for_good],
        for_now(),
    )
    .await
    .unwrap();
    assert_eq!(none_sent.not_sent, mixed.not_sent);
    // Delivered to ann, then a permanent failure that is no refusal (a used-up daily
    // limit): dave would fail the same way, so he fails now.
    let limit = after_partial(&[ann], &[], &[dave], &[], permanent("daily limit")).await;
    assert_eq!(
        limit.unwrap(),
        (groups(Some(("To: dave@example.org", false)), None, false))
    );
    // Delivered to ann, gone refused for good and the send stopped there: dave, never
    // tried, goes again.
    let refusal = after_partial(
        &[ann],
        &[],
        &[gone, dave],
        &[gone_for_good],
        permanent("refused"),
    )
    .await
    .unwrap();
    assert_eq!(
        refusal.not_sent,
        Some(("To: dave@example.org".to_owned(), true))
    );
    // Nothing delivered, carol's part uncertain: carol parked, dave (never tried) again.
    let maybe = after_partial(
        &[],
        &[carol],
        &[dave],
        &[],
        permanent("connection lost after the data").with_uncertain_delivery(),
    )
    .await;
    assert_eq!(
        maybe.unwrap(),
        (groups(
            Some(("To: dave@example.org", true)),
            Some("To: carol@example.org"),
            false
        ))
    );
    // Delivered to ann, then the mailbox's permission refused: dave held for the fix.
    let held = after_partial(&[ann], &[], &[dave], &[], permanent("denied").with_auth()).await;
    assert_eq!(
        held.unwrap(),
        (groups(Some(("To: dave@example.org", true)), None, true))
    );
    // Delivered to ann, dave for now: retried, not held.
    let busy_dave = after_partial(&[ann], &[], &[dave], &[], for_now()).await;
    assert_eq!(
        busy_dave.unwrap(),
        (groups(Some(("To: dave@example.org", true)), None, false))
    );
    // Nobody got it and everyone was refused alike: the email fails, or is retried, as
    // a whole.
    let all_gone = after_partial(&[], &[], &[gone], &[gone_for_good], permanent("refused")).await;
    assert!(
        matches!(all_gone, Err(Outcome::Failed { .. })),
        "{all_gone:?}"
    );
    let all_busy = after_partial(&[], &[], &[busy], &[busy_now], for_now()).await;
    assert!(
        matches!(all_busy, Err(Outcome::Retry { .. })),
        "{all_busy:?}"
    );
}

#[test]
fn a_row_s_report_names_everyone_who_got_the_email_over_its_attempts() {
    let ann = Email::builder().to("ann@example.org").build().unwrap();
    let report = SendReport::single(crate::SentMessage::new(
        ann.recipients().collect(),
        Some("m1".into()),
    ));
    let first = report_json(&report);
    assert_eq!(
        first,
        r#"{"messages":[{"id":"m1","recipients":["To: ann@example.org"]}]}"#
    );
    let second = r#"{"messages":[{"id":"m2","recipients":["To: bob@example.org"]}]}"#;
    assert_eq!(merge_reports(None, second.to_owned()), second);
    assert_eq!(
        merge_reports(Some(first.clone()), second.to_owned()),
        r#"{"messages":[{"id":"m1","recipients":["To: ann@example.org"]},{"id":"m2","recipients":["To: bob@example.org"]}]}"#
    );
    // An earlier report that cannot be read is kept beside the new one.
    let kept = merge_reports(Some("{not json".to_owned()), second.to_owned());
    let kept: serde_json::Value = serde_json::from_str(&kept).unwrap();
    assert_eq!(kept["earlier"], "{not json");
    assert_eq!(kept["latest"], second);
}

#[test]
fn the_message_keeps_the_first_group_and_the_others_are_split_off() {
    let at = SystemTime::now();
    let refused = || Some((rest("To: gone@example.org"), "refused".to_owned()));
    let rows = partial_rows(
        "partial".into(),
        Some("fix".into()),
        Some((rest("To: busy@example.org"), Some(at))),
        Some(rest("To: maybe@example.org")),
        refused(),
    );
    assert_eq!(
        recipients(&rows),
        [
            (State::Queued, "To: busy@example.org"),
            (State::Uncertain, "To: maybe@example.org"),
            (State::Failed, "To: gone@example.org"),
        ]
    );
    assert_eq!((rows.due, rows.error.as_str()), (Some(at), "partial"));
    assert_eq!(rows.splits[1].error, "refused");
    assert_eq!(rows.remedy.as_deref(), Some("fix"));
    assert_eq!(rows.splits[0].remedy.as_deref(), Some(UNCERTAIN_REMEDY));
    assert_eq!(rows.splits[1].remedy.as_deref(), Some(REFUSED_REMEDY));

    // Nothing to retry and nothing uncertain: the refused recipients stay in the message.
    let rows = partial_rows("partial".into(), None, None, None, refused());
    assert_eq!(recipients(&rows), [(State::Failed, "To: gone@example.org")]);
    assert_eq!((rows.due, rows.error.as_str()), (None, "refused"));
    assert_eq!(rows.remedy.as_deref(), Some(REFUSED_REMEDY));

    // Out of attempts: those not sent fail too, in the message; the refused apart.
    let rows = partial_rows(
        "partial".into(),
        None,
        Some((rest("To: busy@example.org"), None)),
        None,
        refused(),
    );
    assert_eq!(
        recipients(&rows),
        [
            (State::Failed, "To: busy@example.org"),
            (State::Failed, "To: gone@example.org"),
        ]
    );

    let rows = partial_rows("partial".into(), None, None, None, None);
    assert_eq!(recipients(&rows), [(State::Sent, "")]);
}
