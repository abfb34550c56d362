"""Numbers, percentages, durations and dates in the viewer's locale (en or pt-BR), times in the tenant's zone.
Pure, no Babel: two locales need a handful of rules."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

_MONTHS = {
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "pt-BR": ("jan", "fev", "mar", "abr", "mai", "jun", "jul", "ago", "set", "out", "nov", "dez"),
}
WEEKDAYS = {
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    "pt-BR": ("seg", "ter", "qua", "qui", "sex", "sáb", "dom"),
}


def number(value: float | int | None, locale: str, digits: int = 0) -> str:
    if value is None:
        return "–"
    text = f"{value:,.{digits}f}"
    if locale == "pt-BR":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


def percent(part: int, whole: int, locale: str) -> str:
    if not whole:
        return "–"
    return (
        number(100 * part / whole, locale, 1) + " %"
        if locale == "pt-BR"
        else number(100 * part / whole, locale, 1) + "%"
    )


def duration(seconds: float | None, locale: str) -> str:
    """12 s, 3 min 5 s, 2 h 10 min."""
    if seconds is None:
        return "–"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


def day(value: date, locale: str) -> str:
    month = _MONTHS.get(locale, _MONTHS["en"])[value.month - 1]
    return f"{value.day} {month}" if locale == "pt-BR" else f"{month} {value.day}"


def weekday(value: date, locale: str) -> str:
    return WEEKDAYS.get(locale, WEEKDAYS["en"])[value.weekday()]


def when(value: datetime | None, zone: str, locale: str) -> str:
    """A moment in the tenant's zone: `7 dez 14:05:09` / `Dec 7 14:05:09`."""
    if value is None:
        return "–"
    local = value.astimezone(ZoneInfo(zone))
    return f"{day(local.date(), locale)} {local:%H:%M:%S}"


def age(seconds: float, locale: str) -> str:
    return duration(max(0.0, seconds), locale)
