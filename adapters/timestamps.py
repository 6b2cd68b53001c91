"""Times sent without a UTC offset: one policy for the HL7, CSV and FHIR readers.

A local wall-clock time becomes an instant only through the feed's configured
zone (``time_zone``), and only when that zone gives it exactly one instant:

- no offset and no configured zone: a reject, never assumed UTC or the host's zone;
- a time in a daylight-saving gap (clocks went forward, the time never happened):
  a reject with the reason, never moved to the nearest real time;
- a time in a fold (clocks went back, the time happened twice): a reject with
  the reason, never resolved to the first or second occurrence;
- a time whose instant in UTC falls outside years 1 to 9999: a reject here, at
  the edge, because nothing downstream can order it.

The instant keeps the offset the zone gave it (``+01:00``, not ``Europe/Berlin``),
as a time sent with its offset would: canonical events carry fixed offsets.
Each reader words the subject (``OBX-14 '202603291230'``, ``time '...'``); the
policy and the rest of each sentence are said once, here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pumpguard.engine.errors import ParseError

__all__ = ["NO_ZONE_CONFIGURED", "check_zone_name", "in_utc_range", "localize", "zone_named"]

NO_ZONE_CONFIGURED = "the feed configuration names no time_zone"
"""Why there is no zone, as most readers say it (CSV also names its mapping)."""


def localize(
    naive: datetime, zone: ZoneInfo | None, shown: str, *, no_zone: str = NO_ZONE_CONFIGURED
) -> datetime:
    """``naive`` read in ``zone``, with the fixed offset it has there; ParseError if none or two.

    Args:
        naive: the wall-clock time as sent (no tzinfo).
        zone: the feed's configured zone, or None.
        shown: the subject of a reject reason, e.g. ``"OBR-7 '202611010130'"``.
        no_zone: why there is no zone, for the reason when ``zone`` is None.
    """
    if zone is None:
        msg = f"{shown} has no UTC offset and {no_zone}; never guessed"
        raise ParseError(msg)
    try:
        first = naive.replace(tzinfo=zone, fold=0)
        # In a gap fold=0 and fold=1 differ too (PEP 495), so the gap is told first: only
        # there does the round trip through UTC come back as another wall-clock time.
        if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
            msg = f"{shown} does not exist in {zone.key} (clocks went forward); never guessed"
            raise ParseError(msg)
        if first.utcoffset() != naive.replace(tzinfo=zone, fold=1).utcoffset():
            msg = f"{shown} is ambiguous in {zone.key} (clocks went back); never guessed"
            raise ParseError(msg)
    except OverflowError as exc:
        msg = f"{shown} in {zone.key} falls outside years 1 to 9999 in UTC"
        raise ParseError(msg) from exc
    return in_utc_range(naive.replace(tzinfo=timezone(first.utcoffset() or timedelta(0))), shown)


def in_utc_range(ts: datetime, shown: str) -> datetime:
    """``ts`` unchanged when its instant falls in years 1 to 9999 in UTC; ParseError if not."""
    try:
        ts.astimezone(UTC)
    except OverflowError as exc:
        msg = f"{shown} falls outside years 1 to 9999 in UTC; not a time pumpguard can order"
        raise ParseError(msg) from exc
    return ts


def check_zone_name(value: str | None) -> str | None:
    """``value`` if it names an IANA zone (or is None); ValueError, for a validator, if not."""
    if value is not None:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            msg = f"unknown time zone {value!r} (use an IANA name like 'Europe/Berlin')"
            raise ValueError(msg) from exc
    return value


def zone_named(value: str | None) -> ZoneInfo | None:
    """The configured zone, or None when none is named (times without offset are then rejected)."""
    return ZoneInfo(value) if value else None
