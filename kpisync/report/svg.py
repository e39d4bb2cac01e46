"""SVG markup built element by element, escaped by construction.

Every attribute value and every child that is not already markup is escaped, so a CRM string can
only ever become text. Text whose first strong character is right-to-left (Persian) is given
`direction="rtl"` with its anchor mirrored, as `dir="auto"` does in HTML; the rest is left to
right even inside a right-to-left page (the <svg> says so, or it would inherit the page's).
"""

from __future__ import annotations

import unicodedata

from markupsafe import Markup, escape

FONT = "DejaVu Sans, Noto Sans, Noto Sans Arabic, Vazirmatn, Segoe UI, Tahoma, Arial, sans-serif"
MIRRORED = {"start": "end", "end": "start", "middle": "middle"}


def number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def attribute(name: str) -> str:
    """Python keyword to SVG attribute: class_ -> class, font_size -> font-size."""
    return name.rstrip("_").replace("_", "-")


def el(tag: str, *children: str | Markup, **attrs: object) -> Markup:
    """`<tag attrs>children</tag>`; None attributes are left out."""
    parts = [tag]
    for key, value in attrs.items():
        if value is None:
            continue
        shown = number(value) if isinstance(value, float) else str(value)
        parts.append(f'{attribute(key)}="{escape(shown)}"')
    head = " ".join(parts)
    if not children:
        return Markup(f"<{head}/>")
    body = "".join(str(escape(child)) for child in children)
    return Markup(f"<{head}>{body}</{tag}>")


def direction(text: str) -> str:
    """ "rtl" when the first strongly directional character is right-to-left, else "ltr"."""
    for character in text:
        kind = unicodedata.bidirectional(character)
        if kind == "L":
            return "ltr"
        if kind in ("R", "AL"):
            return "rtl"
    return "ltr"


def label(
    x: float,
    y: float,
    text: str,
    *,
    anchor: str = "start",
    size: float = 11,
    fill: str = "#334155",
    weight: str | None = None,
    **attrs: object,
) -> Markup:
    """A text element placed like left-to-right text would be, whatever its direction."""
    rtl = direction(text) == "rtl"
    return el(
        "text",
        text,
        x=x,
        y=y,
        font_size=size,
        fill=fill,
        font_weight=weight,
        text_anchor=MIRRORED[anchor] if rtl else anchor,
        direction="rtl" if rtl else None,
        **attrs,
    )


def document(
    width: int, height: int, *children: Markup, name: str, title: str, **attrs: object
) -> Markup:
    """A standalone <svg> (valid inline in HTML and as a file) with a white background."""
    return el(
        "svg",
        el("title", title),
        el("rect", width=width, height=height, fill="#ffffff"),
        *children,
        xmlns="http://www.w3.org/2000/svg",
        viewBox=f"0 0 {width} {height}",
        width=width,
        height=height,
        font_family=FONT,
        role="img",
        class_="chart",
        data_chart=name,
        direction="ltr",
        **attrs,
    )
