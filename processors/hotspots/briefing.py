"""The briefing: a few plain sentences telling an officer why a place is a hot spot.

Built only from a hot spot's `stats` (see build.py), so the text never says more
than the data does: what kind of harm, when it happens (only if the records
carry times, and only if there is a clear peak), how much, and whether it is
rising. Example:

  "Most of the harm here is from robbery (5 of the 14 offences). Offences are
  mostly on Friday and Saturday nights, between 22:00 and 03:00. 14 serious
  violence offences in the 12 months to 30 June 2024, up from 9 in the 12
  months before."
"""
from __future__ import annotations

from datetime import date

LUMPED = "violence and sexual offences"
MIN_TIMED = 8  # same threshold as build.peak_hours / peak_days


def window_phrase(days: int) -> str:
    if days in (365, 366):
        return "12 months"
    if days in (730, 731):
        return "2 years"
    if days % 7 == 0 and days <= 84:
        return f"{days // 7} weeks"
    return f"{days} days"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _long_date(d: date) -> str:
    return f"{d.day} {d:%B %Y}"


def _what(stats: dict) -> str:
    cats = list(stats["by_category"].items())  # ordered by harm, most first
    n = stats["offences"]
    total = stats["harm_days"] or 1.0
    name = [c.lower() for c, _ in cats]
    count = [v["offences"] for _, v in cats]
    if len(cats) == 1:
        lead = "The one offence here is" if n == 1 else "Both offences here are" if n == 2 else f"All {n} offences here are"
        text = f"{lead} {name[0]}."
    elif cats[0][1]["harm_days"] / total >= 0.5:
        text = f"Most of the harm here is {name[0]} ({count[0]} of the {n} offences)."
    else:
        text = f"The harm here is a mix of {name[0]} ({count[0]}) and {name[1]} ({count[1]})" + \
            (f", among {n} offences." if len(cats) > 2 else ".")
    if LUMPED in name[:2]:
        text += " The police.uk category 'violence and sexual offences' does not say whether anyone was injured."
    return text


def _when(stats: dict) -> str:
    parts = []
    if stats.get("period") in ("day", "night"):
        parts.append(f"This is a {'daytime' if stats['period'] == 'day' else 'night-time'} hot spot "
                     f"({stats['hours']}).")
    known = stats["time_known"]
    hours = stats.get("peak_hours")
    days = stats.get("peak_days")
    with_day = known["exact"] + known["day_only"]
    if known["exact"] >= MIN_TIMED:
        nightly = hours is not None and (int(hours["from"][:2]) >= 18 or int(hours["to"][:2]) <= 6)
        day_words = (_join(days) + (" nights" if nightly else "")) if days else None
        if hours and day_words:
            parts.append(f"Offences are mostly on {day_words}, between {hours['from']} and {hours['to']}.")
        elif hours:
            parts.append(f"Offences are mostly between {hours['from']} and {hours['to']}, on any day of the week.")
        elif day_words:
            parts.append(f"Offences are mostly on {day_words}, at no particular time of day.")
        else:
            when = "night" if stats.get("period") == "night" else "day"
            parts.append(f"Offences are spread across the {when} and the week, with no clear busy time.")
    elif with_day >= MIN_TIMED:
        if days:
            parts.append(f"Offences are mostly on {_join(days)} (the time of day is not recorded).")
        else:
            parts.append("Offences are spread across the week (the time of day is not recorded).")
    elif known["month_only"] >= max(known["exact"], known["day_only"], 1):
        parts.append("The data gives only the month of each offence (police.uk), so no busy days or times can be given.")
    else:
        parts.append("Too few offences have a recorded time to show a busy time.")
    return " ".join(parts)


def _how_much(stats: dict, window: str, as_of: date, default_categories: bool) -> str:
    n = stats["offences"]
    kind = "serious violence offence" if default_categories else "offence"
    text = f"{_plural(n, kind)} in the {window} to {_long_date(as_of)}"
    prev = stats.get("previous")
    if prev is None:
        return text + "; there is no earlier data to compare with."
    before = prev["offences"]
    if before == n:
        return text + f", the same as in the {window} before."
    return text + f", {'up' if n > before else 'down'} from {before or 'none'} in the {window} before."


def write_briefing(stats: dict, *, window: str, as_of: date, default_categories: bool) -> str:
    return " ".join([_what(stats), _when(stats), _how_much(stats, window, as_of, default_categories)])
