//! Tests for the parent module.

use super::*;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

fn hm(s: &str) -> NaiveTime {
    NaiveTime::parse_from_str(s, "%H:%M").expect("time")
}

fn cal() -> Calendar {
    Calendar::embedded().expect("the embedded calendar parses")
}

fn times(c: &Calendar, day: &str, s: Segment) -> Vec<(String, String, Kind)> {
    c.sessions_on(d(day), s)
        .into_iter()
        .map(|s| (s.open.format("%H:%M").to_string(), s.close.format("%H:%M").to_string(), s.kind))
        .collect()
}

#[test]
fn the_embedded_calendar_parses_and_covers_2025_and_2026() {
    let c = cal();
    for s in Segment::ALL {
        assert_eq!(c.data_ends(Segments::one(s)), Some(d("2026-12-31")), "{s}");
    }
    assert!(c.sources().iter().any(|l| l.starts_with("source equity 2026 ")), "each year names its source");
    assert!(c.sources().iter().any(|l| l.starts_with("source commodity 2025 ")));
}

#[test]
fn known_dates_of_the_embedded_calendar() {
    let c = cal();
    use Segment::*;
    // Muhurat 2025: the afternoon, on the Diwali holiday.
    assert_eq!(times(&c, "2025-10-21", Equity), vec![("13:45".into(), "14:45".into(), Kind::Special)]);
    let muhurat = c.sessions_on(d("2025-10-21"), Equity).remove(0);
    assert_eq!(muhurat.name.as_deref(), Some("Muhurat trading"));
    // Muhurat 2024 in the evening, 2023 on a Sunday.
    assert_eq!(times(&c, "2024-11-01", Equity), vec![("18:00".into(), "19:00".into(), Kind::Special)]);
    assert_eq!(times(&c, "2023-11-12", Equity), vec![("18:15".into(), "19:15".into(), Kind::Special)]);
    // Budget Saturday 2025: equity 09:15-15:30, MCX 09:00-17:00, no currency session.
    assert_eq!(times(&c, "2025-02-01", Equity), vec![("09:15".into(), "15:30".into(), Kind::Special)]);
    assert_eq!(times(&c, "2025-02-01", Commodity), vec![("09:00".into(), "17:00".into(), Kind::Special)]);
    assert!(times(&c, "2025-02-01", Currency).is_empty());
    // Republic Day 2026: closed everywhere, with its name.
    for s in Segment::ALL {
        assert!(times(&c, "2026-01-26", s).is_empty(), "{s}");
        assert_eq!(c.closed_on(d("2026-01-26"), s).map(|c| c.name), Some("Republic Day".into()), "{s}");
    }
    // An ordinary Tuesday, and MCX's evening in and out of US daylight time.
    assert_eq!(times(&c, "2026-02-10", Equity), vec![("09:15".into(), "15:30".into(), Kind::Regular)]);
    assert_eq!(times(&c, "2026-02-10", Currency), vec![("09:00".into(), "17:00".into(), Kind::Regular)]);
    assert_eq!(times(&c, "2026-02-10", Commodity), vec![("09:00".into(), "23:55".into(), Kind::Regular)]);
    assert_eq!(times(&c, "2026-07-14", Commodity), vec![("09:00".into(), "23:30".into(), Kind::Regular)]);
    // MCX on Holi 2026: only the evening session.
    assert_eq!(times(&c, "2026-03-03", Commodity), vec![("17:00".into(), "23:55".into(), Kind::Special)]);
    assert!(times(&c, "2026-03-03", Equity).is_empty());
    // A weekend without a session is neither a session nor a "closed weekday".
    assert!(times(&c, "2026-02-14", Equity).is_empty());
    assert_eq!(c.closed_on(d("2026-02-14"), Equity), None);
}

#[test]
fn weekdays_past_the_data_count_as_regular_sessions() {
    let c = cal();
    assert_eq!(times(&c, "2027-01-26", Segment::Equity), vec![("09:15".into(), "15:30".into(), Kind::Regular)]);
    assert_eq!(times(&c, "2027-01-26", Segment::Commodity), vec![("09:00".into(), "23:55".into(), Kind::Regular)]);
}

#[test]
fn later_lines_override_earlier_ones() {
    let mut c = cal();
    c.apply(
        "# my broker's notice\n\
         closed equity 2026-02-10 Exchange outage\n\
         session equity 2026-01-26 10:00-11:00 Test session\n\
         closed equity 2025-10-21 No Muhurat for me\n\
         session equity 2025-10-21 18:00-19:00 Muhurat (moved)\n\
         hours equity 2027-01-01 2027-12-31 09:15-15:30\n\
         valid equity 2027-01-01 2027-12-31\n",
    )
    .expect("good lines");
    assert!(times(&c, "2026-02-10", Segment::Equity).is_empty());
    assert_eq!(c.closed_on(d("2026-02-10"), Segment::Equity).map(|c| c.name), Some("Exchange outage".into()));
    assert_eq!(times(&c, "2026-01-26", Segment::Equity), vec![("10:00".into(), "11:00".into(), Kind::Special)]);
    assert_eq!(times(&c, "2025-10-21", Segment::Equity), vec![("18:00".into(), "19:00".into(), Kind::Special)]);
    assert_eq!(c.data_ends(Segments::one(Segment::Equity)), Some(d("2027-12-31")));
    assert_eq!(c.data_ends(Segments::ALL), Some(d("2026-12-31")), "the earliest end of the chosen segments");
}

#[test]
fn bad_lines_are_reported_with_their_numbers_and_nothing_is_applied() {
    let mut c = cal();
    let text = "closed equity 2026-02-10 Fine\n\
                \n\
                closed equity 2026-02-30 Leap\n\
                session equity 2026-02-11 15:00-14:00 Backwards\n\
                session stocks 2026-02-11 10:00-11:00 Wrong segment\n\
                holiday equity 2026-02-12 Typo\n\
                closed equity 2026-02-13\n";
    let errs = c.apply(text).expect_err("bad lines");
    let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![3, 4, 5, 6, 7]);
    assert!(errs[0].to_string().starts_with("line 3: \"2026-02-30\" is not a date"), "{}", errs[0]);
    assert!(errs[1].message.contains("open before the close"), "{}", errs[1]);
    assert!(errs[2].message.contains("unknown segment \"stocks\""), "{}", errs[2]);
    assert!(errs[3].message.contains("unknown entry \"holiday\""), "{}", errs[3]);
    assert!(errs[4].message.contains("needs the holiday's name"), "{}", errs[4]);
    assert_eq!(times(&c, "2026-02-10", Segment::Equity).len(), 1, "the good line was not applied either");
}

#[test]
fn json_shapes_match_the_issue() {
    let c = cal();
    let e = c.entries(d("2025-10-21"), 1, Segments::one(Segment::Equity));
    assert_eq!(
        serde_json::to_string(&e[0].to_json()).expect("json"),
        r#"{"close":"14:45","date":"2025-10-21","kind":"special","name":"Muhurat trading","open":"13:45","segment":"equity"}"#
    );
    let e = c.entries(d("2026-01-26"), 1, Segments::one(Segment::Equity));
    assert_eq!(
        e[0].to_json(),
        serde_json::json!({"date":"2026-01-26","segment":"equity","closed":true,"name":"Republic Day"})
    );
    let regular = c.entries(d("2026-01-27"), 1, Segments::one(Segment::Equity));
    assert_eq!(
        regular[0].to_json(),
        serde_json::json!({"date":"2026-01-27","segment":"equity","open":"09:15","close":"15:30","kind":"regular"})
    );
}

#[test]
fn upcoming_sessions_and_the_next_holiday() {
    let c = cal();
    // Friday 2026-01-23 16:00 IST: equity is closed; Monday is Republic Day.
    let t = at_ist(d("2026-01-23"), hm("16:00"));
    let next = c.upcoming(t, Segments::one(Segment::Equity), 2);
    assert_eq!(next[0].date, d("2026-01-27"));
    assert_eq!(next[1].date, d("2026-01-28"));
    assert_eq!(c.next_holiday(d("2026-01-23"), Segments::one(Segment::Equity)).map(|h| h.date), Some(d("2026-01-26")));
    // During a session, that session comes first.
    let inside = at_ist(d("2026-01-27"), hm("10:00"));
    assert_eq!(c.upcoming(inside, Segments::one(Segment::Equity), 1)[0].date, d("2026-01-27"));
}

#[test]
fn the_end_of_the_data_is_announced_within_thirty_days() {
    let c = cal();
    let eq = Segments::one(Segment::Equity);
    assert_eq!(end_notice(&c, eq, d("2026-11-30")), None, "31 days ahead");
    let (end, text) = end_notice(&c, eq, d("2026-12-01")).expect("30 days ahead");
    assert_eq!(end, d("2026-12-31"));
    assert!(text.contains("ends on 2026-12-31, in 30 days") && text.contains("calendar_file"), "{text}");
    let (_, text) = end_notice(&c, Segments::ALL, d("2027-01-05")).expect("after the end");
    assert!(text.contains("ended on 2026-12-31"), "{text}");
    let mut extended = cal();
    extended.apply("valid equity 2027-01-01 2027-12-31\n").expect("good");
    assert_eq!(end_notice(&extended, eq, d("2026-12-01")), None, "a calendar_file can extend the data");
}

#[test]
fn busy_spans_merge_segments_and_include_the_lead() {
    let c = cal();
    let lead = Duration::minutes(15);
    let t = at_ist(d("2026-02-10"), hm("16:00"));
    assert_eq!(c.busy_span(t, Segments::one(Segment::Equity), lead), None);
    let (a, b) = c.busy_span(t, Segments::ALL, lead).expect("MCX is open");
    assert_eq!((a, b), (at_ist(d("2026-02-10"), hm("08:45")), at_ist(d("2026-02-10"), hm("23:55"))));
    let early = at_ist(d("2026-02-10"), hm("09:05"));
    assert!(c.busy_span(early, Segments::one(Segment::Equity), lead).is_some(), "pre-open is avoided");
    assert!(c.busy_span(at_ist(d("2026-02-10"), hm("08:59")), Segments::one(Segment::Equity), lead).is_none());
}
