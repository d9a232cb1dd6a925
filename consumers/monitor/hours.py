"""Market hours: is a feed's market in its regular session, its extended (pre- or post-market)
hours, or closed, at a given instant? The heartbeat monitor (consumers.monitor) alarms on a
silent feed only when its market should be trading.

A feed's `calendar` is "24/7" (crypto: always regular) or the name of an exchange calendar of
the maintained `exchange-calendars` library ("XNYS", "XNAS", "XLON", ...), which knows each
exchange's sessions, holidays and early closes. US equities also trade outside the regular
session: pre-market from 04:00 to the open, post-market from the close for four hours (to
20:00, or 17:00 after a 13:00 early close); EXTENDED_HOURS has those spans per calendar, and
other exchanges have none. Weekends and exchange holidays are closed all day.

    hours = MarketHours("XNYS")
    hours.phase(datetime(2025, 7, 8, 14, 0, tzinfo=UTC).timestamp())   # "regular" (10:00 NY)

An instant outside the library's range of sessions (about 20 years back to 1 year ahead) is
taken as "regular": alarms stay on rather than go quiet for want of a calendar.
"""

from __future__ import annotations

import datetime
import warnings
from functools import cache
from typing import NamedTuple

ALWAYS = "24/7"
CLOSED, PRE, REGULAR, POST = "closed", "pre", "regular", "post"
PHASES = (CLOSED, PRE, REGULAR, POST)
HOUR = 3600.0
EXTENDED_HOURS = {"XNYS": (5.5 * HOUR, 4 * HOUR), "XNAS": (5.5 * HOUR, 4 * HOUR)}
"""Seconds of pre-market before the open and of post-market after the close."""


class Session(NamedTuple):
    """One trading day's times, in seconds since the epoch."""

    pre: float
    open: float
    close: float
    post: float

    def phase(self, now: float) -> str | None:
        if self.open <= now < self.close:
            return REGULAR
        if self.pre <= now < self.open:
            return PRE
        if self.close <= now < self.post:
            return POST
        return None


def calendar_names() -> list[str]:
    """Every calendar a feed may name."""
    import exchange_calendars

    return [ALWAYS, *exchange_calendars.get_calendar_names()]


@cache
def _calendar(name: str):  # an exchange_calendars.ExchangeCalendar
    import exchange_calendars  # pulls in pandas: imported only where a calendar is used

    with warnings.catch_warnings():  # the library's own deprecation notices from pandas
        warnings.simplefilter("ignore")
        return exchange_calendars.get_calendar(name)


class MarketHours:
    """The phases of one calendar's market; sessions are looked up once per day."""

    def __init__(self, calendar: str) -> None:
        self.calendar = calendar
        self._sessions: dict[datetime.date, Session | None] = {}

    def phase(self, now: float) -> str:
        """CLOSED, PRE, REGULAR or POST at `now` (seconds since the epoch)."""
        if self.calendar == ALWAYS:
            return REGULAR
        cal = _calendar(self.calendar)
        today = datetime.datetime.fromtimestamp(now, cal.tz).date()
        if not cal.first_session.date() <= today <= cal.last_session.date():
            return REGULAR
        for day in (today - datetime.timedelta(days=1), today):  # a session may span midnight
            session = self._session(day)
            phase = session.phase(now) if session else None
            if phase:
                return phase
        return CLOSED

    def _session(self, day: datetime.date) -> Session | None:
        if day not in self._sessions:
            self._sessions[day] = self._lookup(day)
        return self._sessions[day]

    def _lookup(self, day: datetime.date) -> Session | None:
        cal = _calendar(self.calendar)
        if not cal.first_session.date() <= day <= cal.last_session.date():
            return None
        if not cal.is_session(day.isoformat()):
            return None
        opens = cal.session_open(day.isoformat()).timestamp()
        closes = cal.session_close(day.isoformat()).timestamp()
        before, after = EXTENDED_HOURS.get(self.calendar, (0.0, 0.0))
        return Session(opens - before, opens, closes, closes + after)
