//! The exchange calendar through the real binary: `dhan-keeper calendar`, `calendar_file`
//! overrides and their line-numbered errors, `market_hours` segment names, and the bot's
//! `/calendar` and `/status`.

use serde_json::{Value, json};

use crate::daemon::{CHAT, Stack};
use crate::helpers::*;

fn listing(run: &Run) -> Vec<Value> {
    assert_eq!(run.code, 0, "{run:?}");
    serde_json::from_str::<Value>(&run.stdout).expect("JSON").as_array().expect("a list").clone()
}

#[tokio::test]
async fn calendar_json_shows_muhurat_budget_saturday_republic_day_and_an_mcx_evening() {
    let sim = sim().await;
    let ws = Workspace::new(&sim);

    let muhurat = listing(&ws.run(&["calendar", "--json", "--from", "2025-10-21", "--days", "1"]).await);
    assert_eq!(
        muhurat,
        vec![
            json!({"date":"2025-10-21","segment":"equity","open":"13:45","close":"14:45","kind":"special","name":"Muhurat trading"})
        ]
    );

    let budget =
        listing(&ws.run(&["calendar", "--json", "--segment", "all", "--from", "2025-02-01", "--days", "2"]).await);
    assert_eq!(
        budget,
        vec![
            json!({"date":"2025-02-01","segment":"equity","open":"09:15","close":"15:30","kind":"special","name":"Union Budget (Saturday session)"}),
            json!({"date":"2025-02-01","segment":"commodity","open":"09:00","close":"17:00","kind":"special","name":"Union Budget (Saturday session)"}),
        ],
        "Saturday: equity and MCX trade, currency does not; Sunday lists nothing"
    );

    let republic = listing(&ws.run(&["calendar", "--json", "--from", "2026-01-26", "--days", "1"]).await);
    assert_eq!(republic, vec![json!({"date":"2026-01-26","segment":"equity","closed":true,"name":"Republic Day"})]);

    let mcx = listing(
        &ws.run(&["calendar", "--json", "--segment", "commodity", "--from", "2026-07-14", "--days", "1"]).await,
    );
    assert_eq!(
        mcx,
        vec![json!({"date":"2026-07-14","segment":"commodity","open":"09:00","close":"23:30","kind":"regular"})]
    );

    let text = ws.run(&["calendar", "--from", "2025-10-20", "--days", "3"]).await;
    assert_eq!(text.code, 0, "{text:?}");
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", text.stdout);
    assert!(
        lines[1].contains("2025-10-21") && lines[1].contains("13:45-14:45") && lines[1].contains("Muhurat"),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains("closed") && lines[2].contains("Diwali Balipratipada"), "{}", lines[2]);
}

#[tokio::test]
async fn a_calendar_file_adds_and_corrects_entries() {
    let sim = sim().await;
    let ws = Workspace::with(&sim, |m| {
        m.insert("calendar_file".into(), json!("my-calendar.cal"));
        m.insert("market_hours".into(), json!(["equity", "currency"]));
    });
    std::fs::write(
        ws.dir.path().join("my-calendar.cal"),
        "# my broker's notices\n\
         closed equity,currency 2026-02-10 Exchange outage\n\
         session equity 2026-02-14 10:00-11:00 Special live session (Saturday)\n",
    )
    .expect("write");
    let got = listing(&ws.run(&["calendar", "--json", "--from", "2026-02-10", "--days", "5"]).await);
    let dates: Vec<(&str, &str)> = got
        .iter()
        .map(|e| (e["date"].as_str().unwrap_or_default(), e["segment"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        got[0],
        json!({"date":"2026-02-10","segment":"equity","closed":true,"name":"Exchange outage"}),
        "{got:?}"
    );
    assert_eq!(got[1], json!({"date":"2026-02-10","segment":"currency","closed":true,"name":"Exchange outage"}));
    assert_eq!(
        got.last(),
        Some(
            &json!({"date":"2026-02-14","segment":"equity","open":"10:00","close":"11:00","kind":"special","name":"Special live session (Saturday)"})
        )
    );
    assert_eq!(dates.len(), 2 + 2 * 3 + 1, "Wed-Fri for both segments, the Saturday session: {dates:?}");

    let check = ws.run(&["check"]).await;
    assert!(check.stdout.contains("equity, currency"), "check names the segments it avoids: {check:?}");
}

#[tokio::test]
async fn bad_calendar_lines_are_reported_with_their_numbers() {
    let sim = sim().await;
    let ws = Workspace::with(&sim, |m| drop(m.insert("calendar_file".into(), json!("cal.txt"))));
    std::fs::write(
        ws.dir.path().join("cal.txt"),
        "closed equity 2026-02-10 Fine\n\
         session equity 2026-02-11 15:00-14:00 Backwards\n\
         \n\
         holiday equity 2026-02-12 Typo\n",
    )
    .expect("write");
    let run = ws.run(&["calendar", "--json"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("cal.txt line 2: \"15:00-14:00\" is not a session"), "{}", run.stderr);
    assert!(run.stderr.contains("cal.txt line 4: unknown entry \"holiday\""), "{}", run.stderr);
    assert!(!run.stderr.contains("line 1"), "{}", run.stderr);

    let missing = Workspace::with(&sim, |m| drop(m.insert("calendar_file".into(), json!("nowhere.cal"))));
    let run = missing.run(&["calendar"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("`calendar_file`") && run.stderr.contains("nowhere.cal"), "{}", run.stderr);
}

#[tokio::test]
async fn market_hours_accepts_segments_windows_and_off_and_names_the_choices() {
    let sim = sim().await;
    for (value, ok) in [
        (json!("equity"), true),
        (json!("commodity"), true),
        (json!(["equity", "commodity", "currency"]), true),
        (json!("equity,currency"), true),
        (json!("09:00-15:30"), true),
        (json!("off"), true),
        (json!("stocks"), false),
        (json!([]), false),
        (json!("15:30-09:00"), false),
    ] {
        let ws = Workspace::with(&sim, |m| drop(m.insert("market_hours".into(), value.clone())));
        let run = ws.run(&["calendar", "--days", "1"]).await;
        if ok {
            assert_eq!(run.code, 0, "{value}: {run:?}");
        } else {
            assert_eq!(run.code, 2, "{value}: {run:?}");
            assert!(run.stderr.contains("`market_hours` must be \"equity\" (the default)"), "{value}: {}", run.stderr);
        }
    }
    let bad = Workspace::new(&sim);
    let run = bad.run(&["calendar", "--segment", "stocks"]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--segment \"stocks\""), "{run:?}");
    let run = bad.run(&["calendar", "--from", "26-01-2026"]).await;
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("YYYY-MM-DD"), "{run:?}");
}

#[tokio::test]
async fn the_bot_lists_the_calendar_and_status_names_the_next_session() {
    let s = Stack::new(|m| drop(m.insert("market_hours".into(), json!(["equity", "commodity"])))).await;
    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;
    let cal = s.ask(CHAT, "/calendar", "Next sessions").await;
    assert!(cal.contains("(equity, commodity)"), "{cal}");
    assert_eq!(cal.matches("\n• ").count(), 5, "five sessions:\n{cal}");
    assert!(cal.contains("IST"), "{cal}");
    assert!(cal.contains("Next holiday"), "{cal}");
    let status = s.ask(CHAT, "/status", "Expires").await;
    assert!(status.contains("Next session: "), "{status}");
    let help = s.ask(CHAT, "/help", "Commands").await;
    assert!(help.contains("/calendar"), "{help}");

    // The data's end is announced on Telegram at most once per end date, across restarts.
    let (code, _, _) = s.stop(d).await;
    assert_eq!(code, 0);
    let d = s.start();
    s.wait_message(CHAT, "New Dhan token").await;
    s.ask(CHAT, "/help", "Commands").await;
    use dhan_keeper::clock::{Clock, SystemClock};
    let today = dhan_keeper::ist::to_ist(&SystemClock.now()).date_naive();
    let end = chrono::NaiveDate::from_ymd_opt(2026, 12, 31).expect("date");
    let due = (end - today).num_days() <= 30;
    assert_eq!(s.count(CHAT, "📅 the exchange calendar"), usize::from(due), "{:?}", s.texts(CHAT));
    s.stop(d).await;
}
