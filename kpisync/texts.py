"""Texts for people in the configured locale: English (the source and the default) or Persian.

Translations live in the gettext catalogue `kpisync/locale/<locale>/LC_MESSAGES/kpisync.po`,
read with babel and compiled in memory once. Numbers already written in English form ("1,234.5",
"47.3%") are turned into Persian form by `localized`: Persian digits, the Persian thousands (٬)
and decimal (٫) separators and percent sign (٪); rial amounts read "ریال" (toman, a tenth of it
as Iranians write, is for labels only: stored values stay in the currency the settings name).
"""

from __future__ import annotations

import gettext
import io
import re
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from kpisync.calendars import persian_digits

LOCALES: tuple[str, ...] = ("en", "fa")
CATALOGUES = Path(__file__).resolve().parent / "locale"
_NUMBER = re.compile(r"[0-9][0-9,]*(\.[0-9]+)?")
_UNITS_FA = {"days": "روز", "h": "ساعت", "pts": "واحد درصد", "IRR": "ریال"}
_UNIT = re.compile(r"(?<=[0-9]) (days|h|pts|IRR)\b")


@cache
def translations(locale: str) -> gettext.NullTranslations:
    """The catalogue of `locale`; English (and any locale without a catalogue) is the source."""
    path = CATALOGUES / locale / "LC_MESSAGES" / "kpisync.po"
    if locale == "en" or not path.exists():
        return gettext.NullTranslations()
    with path.open("rb") as handle:
        catalogue = read_po(handle, locale=locale)
    compiled = io.BytesIO()
    write_mo(compiled, catalogue)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def translate(text: str, locale: str) -> str:
    return translations(locale).gettext(text)


def localized(text: str, locale: str) -> str:
    """A value written in English form, in `locale`'s: "1,234.5 days" -> "۱٬۲۳۴٫۵ روز"."""
    if locale != "fa":
        return text
    text = _UNIT.sub(lambda m: " " + _UNITS_FA[m.group(1)], text)
    if text.startswith("no data"):
        text = "بدون داده" + text.removeprefix("no data")
    text = _NUMBER.sub(lambda m: m.group(0).replace(",", "٬").replace(".", "٫"), text)
    return persian_digits(text.replace("%", "٪"))
