"""The one escaping policy: every output secretwatch writes passes caller text through here.

Almost everything an alert, a log line or a command prints was chosen by whoever made the call
(user agent, secret name and description, role session name, tag values, error text, policy
text). Each medium gets the same rules:

- **one line of plain text** (e-mail, terminal, message attributes): :func:`escape` keeps what
  is printable, turns every other space into a plain space and writes control, format (bidi
  overrides and isolates, zero-width characters), separator (U+2028/2029), surrogate,
  private-use and unassigned characters as visible escapes (``\\n``, ``\\x1b``, ``\\u202e``), so
  a caller can neither forge extra lines or headers nor reorder what the reader sees;
- **ASCII or GSM-7** (Subject, SMS): :func:`fold` maps accents and look-alikes to their base
  letters and anything else to ``?``; :func:`is_lookalike` says when a name only *looks* like
  another (its NFKC form differs), so the short forms can flag it;
- **JSON** (every machine variant, log lines, the command line's JSON output): :func:`dumps`
  writes ASCII only (``\\uXXXX`` escapes), refuses NaN and Infinity (they become strings
  first), and replaces lone surrogates, which are not Unicode and which SNS refuses;
- **chat markdown** (Slack and Microsoft Teams through Amazon Q Developer in chat
  applications): :func:`chat` writes the one line of :func:`escape` as inline code, with
  nothing left that a chat client turns into a link, a mention or markup, bounded in bytes.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

ELLIPSIS = "…"
MAX_JSON_DEPTH = 32  # deeper values are replaced: our documents are shallow, hostile ones are not
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(ch: str) -> str:
    if ch.isprintable():
        return ch
    if unicodedata.category(ch) == "Zs":
        return " "  # no-break and other spaces read as spaces
    short = _SHORT_ESCAPES.get(ch)
    if short is not None:
        return short
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def escape(value: object) -> str:
    """``value`` as one line of safe text, whole (no length limit)."""
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(_escape_char(ch) for ch in text)


def clean(value: str, limit: int = 1000, *, keep_newlines: bool = False) -> str:
    """:func:`escape`, cut to at most ``limit`` characters with an ellipsis.

    The cut never splits an escape sequence. With ``keep_newlines`` a ``\\n`` stays a line break
    (for the project's own texts, such as a rule's runbook).
    """
    if len(value) <= limit and value.isprintable():
        return value
    pieces: list[str] = []
    used = 0
    for ch in value:
        piece = "\n" if keep_newlines and ch == "\n" else _escape_char(ch)
        if used + len(piece) > limit:
            while pieces and used + len(ELLIPSIS) > limit:
                used -= len(pieces.pop())
            return "".join(pieces) + ELLIPSIS
        pieces.append(piece)
        used += len(piece)
    return "".join(pieces)


def attribute(value: str | None, limit: int = 256) -> str:
    """An SNS message attribute value: escaped, at most ``limit`` characters, never empty."""
    return clean(value, limit) if value else "unknown"


# --- ASCII and GSM-7 ---------------------------------------------------------------------------

# What NFKD decomposition leaves outside ASCII is mapped here first; anything else becomes "?".
_FOLD = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u00df": "ss",
        "\u00e6": "ae",
        "\u00c6": "AE",
        "\u00f8": "o",
        "\u00d8": "O",
        "\u0153": "oe",
        "\u0152": "OE",
        "\u0142": "l",
        "\u0141": "L",
        "\u0111": "d",
        "\u0110": "D",
        "\u0131": "i",
        "\u00fe": "th",
        "\u00de": "Th",
        "\u00f0": "d",
    }
)
# The printable ASCII characters of the GSM 03.38 basic set: backtick, [ \ ] ^ { | } ~ are not in
# it (they need the escape table and cost two septets), so they are mapped or replaced.
_GSM_FOLD = str.maketrans({"[": "(", "]": ")", "{": "(", "}": ")", "\\": "/", "|": "/", "~": "-"})
ASCII_PRINTABLE = frozenset(chr(code) for code in range(0x20, 0x7F))
GSM7_SAFE = ASCII_PRINTABLE - frozenset("`[\\]^{|}~")


def fold(value: str, alphabet: frozenset[str] = ASCII_PRINTABLE) -> str:
    """``value`` in ``alphabet``: accents dropped, look-alikes mapped, the rest as ``?``."""
    text = unicodedata.normalize("NFKD", value).translate(_FOLD)
    if alphabet is GSM7_SAFE:
        text = text.translate(_GSM_FOLD)
    out: list[str] = []
    for ch in text:
        if ch in alphabet:
            out.append(ch)
        elif unicodedata.combining(ch):
            continue
        elif unicodedata.category(ch) == "Zs":
            out.append(" ")
        else:
            out.append("?")
    return "".join(out)


def is_lookalike(name: str) -> bool:
    """True when ``name`` only looks like another name: fullwidth or mathematical letters,
    ligatures, no-break spaces... (its NFKC form is a different string)."""
    return not name.isascii() and unicodedata.normalize("NFKC", name) != name


def cut(value: str, limit: int, marker: str = ELLIPSIS) -> str:
    if len(value) <= limit:
        return value
    if limit <= len(marker):
        return value[:limit]
    return value[: limit - len(marker)].rstrip() + marker


def fit(values: list[str], budget: int, marker: str) -> list[str]:
    """Shorten the longest values first so that together they fit in ``budget`` characters."""
    budget = max(budget, 0)
    if sum(len(value) for value in values) <= budget:
        return values
    low, high = 0, max(len(value) for value in values)
    while low < high:  # the largest per-value cap that fits
        mid = (low + high + 1) // 2
        if sum(min(len(value), mid) for value in values) <= budget:
            low = mid
        else:
            high = mid - 1
    return [cut(value, low, marker) for value in values]


# --- JSON ---------------------------------------------------------------------------------------


def _string(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: not Unicode text
        return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in value)
    return value


def _number(value: float | Decimal) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        return int(value) if value == value.to_integral_value() else float(value)
    return value if math.isfinite(value) else str(value)  # "nan", "inf": JSON has no such numbers


def json_ready(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` that :func:`json.dumps` writes under this policy, whatever it holds."""
    if isinstance(value, str):
        return _string(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float | Decimal):
        return _number(value)
    if _depth >= MAX_JSON_DEPTH:
        return f"<nested deeper than {MAX_JSON_DEPTH} levels>"
    if isinstance(value, Mapping):
        return {_string(str(key)): json_ready(item, _depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item, _depth + 1) for item in value]
    if isinstance(value, set | frozenset):
        return sorted(json_ready(item, _depth + 1) for item in value)
    if isinstance(value, datetime):
        return value.isoformat()
    return _string(str(value))


def dumps(value: Any, *, indent: int | None = None, sort_keys: bool = False) -> str:
    """JSON under the one policy: ASCII only, no NaN or Infinity, no lone surrogates."""
    separators = None if indent is not None else (",", ":")
    try:
        # The common case in one C call: plain JSON types, finite numbers, no surrogate escape.
        text = json.dumps(
            value,
            ensure_ascii=True,
            allow_nan=False,
            separators=separators,
            indent=indent,
            sort_keys=sort_keys,
        )
    except (TypeError, ValueError, RecursionError):
        pass
    else:
        if "\\ud" not in text:  # a surrogate (even a valid pair) takes the careful path
            return text
    return json.dumps(
        json_ready(value),
        ensure_ascii=True,
        allow_nan=False,
        separators=separators,
        indent=indent,
        sort_keys=sort_keys,
    )


def log_serializer(value: Any) -> str:
    """The functions' log lines: JSON under the same policy (Powertools ``json_serializer``)."""
    return dumps(value)


# --- chat markdown -------------------------------------------------------------------------------

# Slack reads <...> as links and mentions (<https://x|text>, <@U123>, <!here>) and documents &, <
# and > as the characters to escape; a backtick would end the inline code; "@" starts a mention
# in either client. Each becomes a visible, inert form.
_CHAT_MARKUP = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "`": "'", "@": "\uff20"}
_CHAT_EMPTY = "-"


def _chat_pieces(value: str) -> list[str]:
    # "://" is defanged first (as incident tooling does), and "](" split, so that no Markdown
    # link [text](url) can form: inside inline code no client renders one, and outside it (a
    # title in a notification preview) none can either.
    text = value.replace("://", "[:]//").replace("](", "] (")
    pieces = []
    for ch in text:
        piece = _escape_char(ch)
        pieces.append(_CHAT_MARKUP.get(piece, piece))
    return pieces


def chat(value: object, limit: int, *, code: bool = True) -> str:
    """``value`` for a chat message: one line, inert, at most ``limit`` bytes of UTF-8.

    With ``code`` (the default, for caller-controlled text) it is inline code, backticks
    included in the bound, so no markdown applies to it; without, it is plain text with the same
    characters neutralised (for the project's own texts, such as a rule's description).
    """
    text = "" if value is None else str(value)
    if not text:
        return _CHAT_EMPTY
    fence = "`" if code else ""
    budget = limit - 2 * len(fence)
    pieces, used, cut_short = [], 0, False
    for piece in _chat_pieces(text):
        size = len(piece.encode("utf-8"))
        if used + size > budget:
            cut_short = True
            break
        pieces.append(piece)
        used += size
    if cut_short:  # an escape or entity is never split: whole pieces go until the marker fits
        marker = len(ELLIPSIS.encode("utf-8"))
        while pieces and used + marker > budget:
            used -= len(pieces.pop().encode("utf-8"))
        pieces.append(ELLIPSIS)
    return f"{fence}{''.join(pieces)}{fence}"


def chat_bytes(value: str) -> int:
    """The UTF-8 size of a chat string, as the bounds above count it."""
    return len(value.encode("utf-8"))
