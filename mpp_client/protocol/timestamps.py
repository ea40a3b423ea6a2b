"""RFC 3339 timestamps (challenge ``expires``, receipt ``timestamp``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from mpp_client.errors import FormatError, ParseError

__all__ = ["format_timestamp", "parse_timestamp"]

# RFC 3339 §5.6 date-time. Fixed-width fields and no nested quantifiers: linear and cheap.
_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 date-time into a timezone-aware UTC datetime.

    Fractions finer than a microsecond are truncated; a leap second (``:60``) is read as the
    last microsecond of the preceding second. Raises :class:`~mpp_client.errors.ParseError`
    for anything else (missing offset, out-of-range fields, trailing text).
    """
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        raise ParseError("timestamp is not RFC 3339 (YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM))")
    try:
        # Fast path: for text of RFC 3339 shape fromisoformat is exact (it reads 'Z' since 3.11).
        moment = datetime.fromisoformat(text)
    except ValueError:
        # Lower-case 't'/'z' and leap seconds are RFC 3339 but not ISO-format Python reads.
        moment = _slow_parse(match)
    if moment.tzinfo is UTC:
        return moment
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ParseError("timestamp is outside the years 1-9999 in UTC") from None


def _slow_parse(match: re.Match[str]) -> datetime:
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    sec = int(second)
    if sec == 60:
        sec, micro = 59, 999_999
    try:
        if zulu:
            tz = UTC
        else:
            if int(off_h) > 23 or int(off_m) > 59:
                raise ValueError("offset out of range")
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            tz = timezone(-offset if sign == "-" else offset)
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), sec, micro, tzinfo=tz
        )
    except (ValueError, OverflowError):
        raise ParseError("timestamp has out-of-range fields") from None


def format_timestamp(moment: datetime) -> str:
    """Write a timezone-aware datetime as RFC 3339 in UTC with a ``Z`` suffix.

    Whole seconds are written without a fraction. Raises
    :class:`~mpp_client.errors.FormatError` for naive datetimes (their zone is unknown).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise FormatError("timestamps must be timezone-aware")
    utc = moment.astimezone(UTC)
    text = (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    )
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"
