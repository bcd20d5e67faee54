#!/usr/bin/env python3
"""Builds crates/dhan-keeper/data/calendar.cal, the exchange calendar embedded in dhan-keeper.

Inputs:
  * pandas_market_calendars (NSE): equity regular sessions, holidays and weekday special sessions
    (Muhurat trading, changed hours), cross-checked against exchange_calendars (XBOM);
  * mcx-holidays.tsv: MCX's published holiday lists (morning/evening session per holiday);
  * overrides.cal: reviewed entries the libraries lack (weekend sessions, currency hours), each
    with a `# source:` line.

The committed output is what the build reads, so CI needs no Python. To regenerate:

    python3 -m venv /tmp/calvenv
    /tmp/calvenv/bin/pip install pandas_market_calendars exchange_calendars
    /tmp/calvenv/bin/python tools/calendar/generate.py > crates/dhan-keeper/data/calendar.cal

Neither library names its holidays; see holiday_names().
"""

import datetime as dt
import importlib.metadata as md
import pathlib
import sys
from zoneinfo import ZoneInfo

import exchange_calendars as xc
import pandas_market_calendars as mcal

HERE = pathlib.Path(__file__).resolve().parent
EQUITY_YEARS = range(2015, 2027)  # pandas_market_calendars' NSE holiday data ends in 2026
MCX_YEARS = range(2025, 2027)  # years with a published MCX list in mcx-holidays.tsv
CURRENCY_YEARS = range(2025, 2027)
IST = ZoneInfo("Asia/Kolkata")
NEW_YORK = ZoneInfo("America/New_York")


def hhmm(ts):
    return ts.tz_convert(IST).strftime("%H:%M")


FIXED_NAMES = {
    (1, 26): "Republic Day",
    (4, 14): "Dr. Baba Saheb Ambedkar Jayanti",
    (5, 1): "Maharashtra Day",
    (8, 15): "Independence Day",
    (10, 2): "Mahatma Gandhi Jayanti",
    (12, 25): "Christmas",
}


def holiday_names(mcx):
    """Date -> name. Neither library names its holidays: the names come from the MCX table (the
    same festivals), holiday-names.tsv (NSE-only closures), and the fixed-date national holidays."""
    names = {d: name for d, (_, _, name) in mcx.items()}
    for line in (HERE / "holiday-names.tsv").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            date, name = line.split("\t")
            names[dt.date.fromisoformat(date)] = name
    return names


def name_of(day, names):
    return names.get(day) or FIXED_NAMES.get((day.month, day.day)) or "Exchange holiday"


def equity(out, warn, names):
    nse = mcal.get_calendar("NSE")
    first, last = dt.date(EQUITY_YEARS[0], 1, 1), dt.date(EQUITY_YEARS[-1], 12, 31)
    sched = nse.schedule(str(first), str(last))
    sessions = {d.date(): (hhmm(r.market_open), hhmm(r.market_close)) for d, r in sched.iterrows()}

    xbom = xc.get_calendar("XBOM")
    xs = set(d.date() for d in xbom.sessions_in_range(str(first), str(min(last, xbom.last_session.date()))))
    for d in sorted(set(sessions) ^ xs):
        side = "pandas_market_calendars only" if d in sessions else "exchange_calendars only"
        warn(f"equity {d}: session in {side}")

    out.append("hours equity %s %s 09:15-15:30" % (first, last))
    day = first
    while day <= last:
        if day.weekday() < 5:
            if day not in sessions:
                out.append(f"closed equity {day} {name_of(day, names)}")
            elif sessions[day] != ("09:15", "15:30"):
                o, c = sessions[day]
                name = "Muhurat trading" if o >= "13:00" else "Changed hours"
                if name == "Muhurat trading":
                    out.append(f"closed equity {day} {names.get(day, 'Diwali Laxmi Pujan')}")
                out.append(f"session equity {day} {o}-{c} {name}")
        day += dt.timedelta(days=1)
    return set(sessions)


def us_dst(day):
    return bool(dt.datetime.combine(day, dt.time(12), NEW_YORK).dst())


def commodity(out, mcx):
    """MCX: 09:00-23:30 while the US is on daylight time, else 09:00-23:55; holidays from the table."""
    first, last = dt.date(MCX_YEARS[0], 1, 1), dt.date(MCX_YEARS[-1], 12, 31)
    start, day = first, first
    while day <= last:
        nxt = day + dt.timedelta(days=1)
        if nxt > last or us_dst(nxt) != us_dst(day):
            close = "23:30" if us_dst(day) else "23:55"
            out.append(f"hours commodity {start} {day} 09:00-{close}")
            start = nxt
        day = nxt
    for day, (morning, evening, name) in sorted(mcx.items()):
        close = "23:30" if us_dst(day) else "23:55"
        out.append(f"closed commodity {day} {name}")
        if morning == "open":
            out.append(f"session commodity {day} 09:00-17:00 {name} (morning session only)")
        if evening == "open":
            out.append(f"session commodity {day} 17:00-{close} {name} (evening session only)")


def currency(out, equity_sessions, names):
    """Currency derivatives close on the equity holidays (NSE publishes one list for both)."""
    first, last = dt.date(CURRENCY_YEARS[0], 1, 1), dt.date(CURRENCY_YEARS[-1], 12, 31)
    day = first
    while day <= last:
        if day.weekday() < 5 and day not in equity_sessions:
            out.append(f"closed currency {day} {name_of(day, names)}")
        day += dt.timedelta(days=1)


def read_mcx():
    table = {}
    for line in (HERE / "mcx-holidays.tsv").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        date, morning, evening, name = line.split("\t")
        table[dt.date.fromisoformat(date)] = (morning, evening, name)
    return table


def read_overrides():
    """The overrides, each entry kept with its source comment; refuses an entry without one."""
    lines, source = [], None
    for n, line in enumerate((HERE / "overrides.cal").read_text().splitlines(), 1):
        s = line.strip()
        if s.startswith("# source:"):
            source = s
        elif s and not s.startswith("#"):
            if source is None:
                sys.exit(f"overrides.cal:{n}: entry without a preceding `# source:` line")
            lines += [source, s]
            source = None
    return lines


def main():
    warnings = []
    warn = warnings.append
    pmc, xcv = md.version("pandas_market_calendars"), md.version("exchange_calendars")
    body = []
    mcx = read_mcx()
    names = holiday_names(mcx)
    eq_sessions = equity(body, warn, names)
    commodity(body, mcx)
    currency(body, eq_sessions, names)
    head = [
        "# dhan-keeper exchange calendar (format 1). Generated by tools/calendar/generate.py; do not edit by hand,",
        "# edit tools/calendar/overrides.cal or mcx-holidays.tsv and regenerate. Times are IST. Format: docs/calendar.md",
        "#",
        "# Segments: equity = NSE/BSE cash and F&O; commodity = MCX; currency = NSE/BSE currency derivatives.",
        f"valid equity {EQUITY_YEARS[0]}-01-01 {EQUITY_YEARS[-1]}-12-31",
        f"valid commodity {MCX_YEARS[0]}-01-01 {MCX_YEARS[-1]}-12-31",
        f"valid currency {CURRENCY_YEARS[0]}-01-01 {CURRENCY_YEARS[-1]}-12-31",
    ]
    for y in EQUITY_YEARS:
        head.append(
            f"source equity {y} pandas_market_calendars {pmc} (NSE) cross-checked with exchange_calendars {xcv} "
            "(XBOM); weekend sessions from tools/calendar/overrides.cal"
        )
    for y in MCX_YEARS:
        head.append(
            f"source commodity {y} MCX holiday circular {y} (tools/calendar/mcx-holidays.tsv); hours 09:00-23:30 "
            "during US daylight time else 09:00-23:55; specials from tools/calendar/overrides.cal"
        )
    for y in CURRENCY_YEARS:
        head.append(
            f"source currency {y} NSE trading holidays {y} (same list as equity, from pandas_market_calendars "
            f"{pmc}); hours 09:00-17:00 from tools/calendar/overrides.cal"
        )
    for w in warnings:
        head.append(f"# note: {w} (the muhurat/weekend overrides below account for these)")
    print("\n".join(head + ["", "# --- generated from the libraries ---"] + body + ["", "# --- overrides ---"]
                    + read_overrides()))


if __name__ == "__main__":
    main()
