"""Tokenizer for ``WWW-Authenticate`` field values (RFC 9110 §11 challenges and auth-params).

One field value may hold several challenges of several schemes::

    Bearer realm="x", Payment id="a", realm="b", ..., Payment id="c", ...

The scanner walks the value once, left to right, with a handful of precompiled regular
expressions. Every repetition in them is possessive (``*+``, ``++``) and the alternatives inside
a repetition start with different characters, so the regex engine never backtracks: the work is
linear in the length of the value even on hostile input (long runs of backslashes, quotes,
commas or ``Payment `` repeats). Scanning never fails; what cannot be read is skipped up to the
next comma outside a quoted string, which is what lets one broken challenge (or one broken
extension parameter) leave its neighbours intact.

Quoted strings honour RFC 9110 quoted-pairs (``\\"`` is ``"``) and mppx's ``\\uXXXX`` escape for
characters above U+00FF. An unescaped quote inside a value ends it, and the junk up to the next
top-level comma is ignored (protocol README §2, "permissive tail"). A value that holds a control
character (raw, quoted or escaped), a bidi formatting character or a lone surrogate makes its
challenge defective: see ``_UNSAFE``.
"""

from __future__ import annotations

import re

from mpp_client.errors import FormatError

__all__ = ["RawChallenge", "has_unsafe_character", "is_token", "quote", "scan", "unquote"]

# RFC 9110 tchar.
_TCHAR = r"!#$%&'*+.^_`|~0-9A-Za-z-"
_QUOTED = r'"((?:[^"\\]++|\\.)*+)"'

# A complete auth-param element: name BWS "=" BWS (quoted-string / token), then the end of the
# element (a comma or the end of the value). Leading commas and OWS are empty list elements.
# Unquoted values also take "/" and "=" so base64 (token68-like) values survive unquoted.
_PARAM = re.compile(
    rf"[ \t,]*+([{_TCHAR}]++)[ \t]*+=[ \t]*+(?:{_QUOTED}|([{_TCHAR}/=]++))[ \t]*+(?=,|\Z)",
    re.DOTALL,
).match
# The permissive tail: name="value" followed by junk; the junk is skipped separately.
_PARAM_WITH_TAIL = re.compile(
    rf"[ \t,]*+([{_TCHAR}]++)[ \t]*+=[ \t]*+{_QUOTED}",
    re.DOTALL,
).match
# A scheme name starts a challenge when it is not followed by "=". Group 2 is set when
# whitespace followed it, i.e. auth-params or a token68 may come next.
_SCHEME = re.compile(rf"[ \t,]*+([{_TCHAR}]++)(?:([ \t]++)(?!=)|(?=,)|\Z)").match
# Anything up to the next comma outside a quoted string. An unterminated quoted string runs to
# the end of the value.
_JUNK = re.compile(r'[ \t,]*+(?:[^",]++|"(?:[^"\\]++|\\.)*+"?)*+', re.DOTALL).match

# The well-formed case as one alternation for re.findall: separators, then a complete param
# (groups 1-3) or a scheme (groups 4-5); "\Z" consumes trailing separators. Anything else is
# junk (group 6), which takes the rest of the value at once: the fast path gives up there, so
# findall never walks hostile input character by character.
_ELEMENTS = re.compile(
    rf"[ \t,]*+(?:([{_TCHAR}]++)[ \t]*+=[ \t]*+(?:{_QUOTED}|([{_TCHAR}/=]++))[ \t]*+(?=,|\Z)"
    rf"|([{_TCHAR}]++)(?:([ \t]++)(?!=)|(?=,)|\Z)"
    r"|([^ \t,].*+)|\Z)",
    re.DOTALL,
).findall
# The usual shape with the quoted values cut out (``Payment id=", realm=", ...``): each gap
# between two values holds the end of the previous value (OWS, a comma), separators, an optional
# new scheme and the next parameter's name and "="; after the last value only separators.
# _SKELETON checks the whole shape, _GAPS then reads scheme and name out of each gap.
_GAP = rf'(?:([{_TCHAR}]++)[ \t]++)?([{_TCHAR}]++)[ \t]*+=[ \t]*+"'
_SKELETON = re.compile(rf"[ \t,]*+{_GAP}(?:[ \t]*+,[ \t,]*+{_GAP})*+[ \t,]*+").fullmatch
_GAPS = re.compile(rf"[ \t,]*+{_GAP}").findall
# Stand-ins for the quoted-pairs of a backslash and of a quote while a value is split on quotes.
_BACKSLASH_PAIR = "\x00\x01"
_QUOTE_PAIR = "\x00\x02"
_TOKEN = re.compile(rf"[{_TCHAR}]+").fullmatch
_ESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|(.))", re.DOTALL)
# Once every "\\\\" pair has become _BACKSLASH_PAIR, each backslash left starts an escape: the
# quoted-pairs (all but "\\uXXXX") lose their backslash through one C-level substitution with a
# fixed replacement, and only the "\\uXXXX" escapes are left.
_DROP_PAIR_BACKSLASHES = re.compile(r"\\(?=.)(?!u[0-9A-Fa-f]{4})", re.DOTALL).sub
_SURROGATE = re.compile("[\ud800-\udfff]").search
# Characters no parameter value may carry, whether raw, as a quoted-pair or as a \\uXXXX
# escape; the parser refuses them and quote() refuses to write them, so whatever parses can be
# written back. Values such as realm and description end up on a human's screen when they decide
# to pay, and a terminal obeys what it is sent:
# - C0 controls other than HTAB, DEL and the C1 controls U+0080-U+009F: RFC 9110 forbids CTLs in
#   field values, and ESC / CSI (U+009B) start terminal escape sequences (clear the screen,
#   recolour, set the window title);
# - the explicit bidirectional formatting characters (U+061C, U+200E, U+200F, U+202A-U+202E,
#   U+2066-U+2069): they reorder what is displayed, so "moc.live" can read as "evil.com"
#   ("Trojan Source", CVE-2021-42574). Right-to-left text displays correctly without them, so
#   no honest realm or description needs one in a header parameter;
# - lone surrogates (U+D800-U+DFFF): no encoding can write them. Escaped ones have already become
#   U+FFFD in unquote(); a raw one can only come from a caller's str, never from HTTP bytes.
# Other invisible format characters (U+200B, U+200D, U+FEFF, ...) are accepted: zero-width
# joiners are part of emoji and of several scripts. The CLI shows them as escapes.
_UNSAFE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
).search
_ABOVE_ASCII = re.compile(r"[^\x00-\x7f]")
# The ASCII characters _UNSAFE accepts: HTAB and the printable range.
_SAFE_ASCII = b"\t" + bytes(range(0x20, 0x7F))


class RawChallenge:
    """One challenge as scanned: lower-cased scheme, raw (unescaped) params, first defect."""

    __slots__ = ("defect", "params", "scheme")

    def __init__(self, scheme: str) -> None:
        self.scheme = scheme
        self.params: dict[str, str] = {}
        # Why the challenge cannot be used as it stands (a duplicate parameter, a token68 where
        # auth-params were expected); None when it scanned cleanly.
        self.defect: str | None = None

    def __repr__(self) -> str:
        names = sorted(self.params)
        return f"RawChallenge({self.scheme!r}, params={names}, defect={self.defect!r})"


def _unescape_one(match: re.Match[str]) -> str:
    code = match.group(1)
    return chr(int(code, 16)) if code is not None else match.group(2)


def _unquote_slow(text: str) -> str:
    # Any text, including one that holds NUL (where the placeholders could be spoofed).
    text = _ESCAPE.sub(_unescape_one, text)
    if _SURROGATE(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def _unquote_paired(text: str) -> str:
    """Resolve escapes in ``text`` whose quoted-pairs of a backslash (and maybe of a quote) are
    already _BACKSLASH_PAIR (and _QUOTE_PAIR), and which held no NUL before that.

    Every backslash left starts an escape, so dropping it resolves a quoted-pair; ``\\uXXXX``
    escapes are decoded before the placeholders turn back into the characters they stand for.
    """
    if "\\" in text:
        if "\\u" in text:
            if "\\u000" in text:
                # A \u0000 escape makes a NUL that could join a following character into a
                # placeholder: resolve the original text the careful way (rare, and refused as
                # unsafe anyway).
                return _unquote_slow(
                    text.replace(_QUOTE_PAIR, '\\"').replace(_BACKSLASH_PAIR, "\\\\")
                )
            # After the drop every "\\u" left is followed by 4 hex digits: splitting on it and
            # converting each piece's head costs less than a regex with a Python callback.
            pieces = _DROP_PAIR_BACKSLASHES("", text).split("\\u")
            out = [pieces[0]]
            surrogates = False
            for piece in pieces[1:]:
                code = int(piece[:4], 16)
                surrogates = surrogates or 0xD800 <= code <= 0xDFFF
                out.append(chr(code))
                out.append(piece[4:])
            text = "".join(out)
            if surrogates:
                text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        else:
            text = _DROP_PAIR_BACKSLASHES("", text)
    if "\x00" in text:
        text = text.replace(_QUOTE_PAIR, '"').replace(_BACKSLASH_PAIR, "\\")
    return text


def unquote(text: str) -> str:
    """Resolve quoted-pairs and mppx ``\\uXXXX`` escapes in the inside of a quoted string.

    A backslash followed by any character is that character (RFC 9110 quoted-pair), except
    ``\\u`` + 4 hex digits, which is the character with that code. ``\\u`` escapes come in UTF-16
    units (mppx escapes JavaScript string code units), so a surrogate pair becomes one
    character; a lone surrogate becomes U+FFFD. A trailing lone backslash is kept as it is.
    """
    if "\\" not in text:
        return text
    if "\x00" in text:
        return _unquote_slow(text)
    text = _unquote_paired(text.replace("\\\\", _BACKSLASH_PAIR))
    if _SURROGATE(text):  # a raw lone surrogate from a caller's str
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def _escape_above_ascii(match: re.Match[str]) -> str:
    units = match.group().encode("utf-16-be")
    return "".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2))


def quote(value: str, name: str) -> str:
    """Write ``value`` as a quoted-string for parameter ``name``.

    ``\\`` and ``"`` are escaped; characters beyond ASCII use mppx's ``\\uXXXX`` escape so the
    header stays ASCII. Raises :class:`~mpp_client.errors.FormatError` for CR, LF and other
    control characters (header injection), bidi formatting characters and lone surrogates:
    exactly what the parser refuses.
    """
    if _UNSAFE(value):
        raise FormatError(
            f"{name} contains CR, LF, another control character, a bidi control or a lone surrogate"
        )
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    if not escaped.isascii():
        escaped = _ABOVE_ASCII.sub(_escape_above_ascii, escaped)
    return f'"{escaped}"'


def has_unsafe_character(value: str) -> bool:
    """True when ``value`` holds a character no parameter may carry: a control character other
    than HTAB (C0, DEL, C1), a bidi formatting character or a lone surrogate."""
    return _UNSAFE(value) is not None


def is_token(value: str) -> bool:
    """True when ``value`` is an RFC 9110 token (e.g. a valid header field name)."""
    return _TOKEN(value) is not None


def _unsafe_defect(name: str) -> str:
    # The whole challenge is refused, not just the parameter: RFC 9110 lets a recipient reject
    # a field value carrying CTLs, and a challenge that lost its description (or an extension
    # the server relies on) would be echoed differently from what was offered.
    return f"{name} contains a control character, a bidi control or a lone surrogate"


def _junk_end(value: str, pos: int) -> int:
    match = _JUNK(value, pos)
    # The pattern matches the empty string, so there is always a match.
    return match.end() if match is not None else len(value)


def scan(value: str) -> list[RawChallenge]:
    """Split one field value into challenges. Never raises; linear in ``len(value)``.

    Parameters before the first scheme are dropped. Parameter names are lower-cased and
    quoted values unescaped; a repeated name marks the challenge defective.
    """
    challenges = _scan_all_quoted(value)
    if challenges is None:
        challenges = _scan_well_formed(value)
    return challenges if challenges is not None else _scan_any(value)


def _scan_all_quoted(value: str) -> list[RawChallenge] | None:
    """The usual shape (every parameter a quoted string) by splitting on quotes.

    The values, which are most of the text (base64url ``request``), are cut out by one
    C-level ``str.split``; only the short skeleton left goes through a regular expression.
    None whenever the value has another shape: then :func:`_scan_well_formed` decides. Gives
    exactly what :func:`_scan_any` gives whenever it does not give None (a property test holds
    the two together).
    """
    # An ASCII field value (the usual: httpx decodes Latin-1, servers escape the rest) is safe
    # when deleting its safe bytes leaves nothing: one C pass over a bytes copy, several times
    # quicker than isprintable()'s per-character Unicode lookup. Otherwise isprintable() is
    # one C pass and False for every character _UNSAFE finds (controls, format characters,
    # surrogates); the regex only runs on values holding, say, a tab.
    if value.isascii():
        if value.encode("ascii").translate(None, _SAFE_ASCII):
            return None
    elif not (value.isprintable() or _UNSAFE(value) is None):
        return None
    first = value.find("\\")
    escaped = first >= 0
    if escaped:
        # Quoted-pairs "\\\\" and "\\"" become two-character placeholders (the value holds no
        # control character, so they cannot clash), leaving only unescaped quotes to split on
        # and only escape-starting backslashes in the values (see _unquote_paired). str.replace
        # pairs a run of backslashes from its left, exactly as quoted-pairs do; a placeholder
        # outside a value is refused by _SKELETON like the backslash it stands for. Only the
        # stretch from the first backslash to the character after the last one is searched:
        # the long base64url values around it (request, opaque) hold none.
        end = value.rfind("\\") + 2
        span = value[first:end].replace("\\\\", _BACKSLASH_PAIR).replace('\\"', _QUOTE_PAIR)
        value = value[:first] + span + value[end:]
    parts = value.split('"')
    if not len(parts) % 2:
        return None  # an odd number of quotes: an unterminated string
    skeleton = '"'.join(parts[::2])
    gaps = _SHAPES.get(skeleton)
    if gaps is None:
        gaps = _shape_of(skeleton)
        if gaps is None:
            return None
    challenges: list[RawChallenge] = []
    current: RawChallenge | None = None
    params: dict[str, str] = {}
    # Gap i ends with the quote that opens value i.
    for (scheme, name), text in zip(gaps, parts[1::2], strict=True):
        if scheme:
            current = RawChallenge(scheme)
            params = current.params
            challenges.append(current)
        elif current is None:
            continue  # parameters before the first scheme are dropped
        if name in params:
            current.defect = current.defect or f"duplicate {name} parameter"
            continue
        if escaped:
            if "\\" in text:
                known = _UNQUOTED.get(text)
                if known is None:
                    known = _unquote_scanned(text)
                text, unsafe = known
                if unsafe:
                    current.defect = current.defect or _unsafe_defect(name)
            elif "\x00" in text:
                # Only quoted-pairs of backslashes and quotes: two str.replace calls.
                text = text.replace(_QUOTE_PAIR, '"').replace(_BACKSLASH_PAIR, "\\")
        params[name] = text
    return challenges


# Skeletons already read, to their (scheme, name) gaps. A server sends the same shape with every
# 402 (only the values change, and they are cut out), so checking and splitting it again would be
# the same two regex passes over the same text. Bounded: a server that varies its shape only
# refills the cache; skeletons too long to be an honest shape are never kept.
_SHAPES: dict[str, tuple[tuple[str, str], ...]] = {}
_SHAPES_MAX = 256
_SHAPE_MAX_LENGTH = 1024


def _shape_of(skeleton: str) -> tuple[tuple[str, str], ...] | None:
    """The (scheme, name) pair of each gap of a well-formed skeleton, None for any other."""
    if _SKELETON(skeleton) is None:
        return None
    # Schemes and names are case-insensitive: lower-casing the short skeleton (ASCII, values cut
    # out) lowers them all in one call.
    gaps = tuple(_GAPS(skeleton.lower()))
    if len(skeleton) <= _SHAPE_MAX_LENGTH:
        if len(_SHAPES) >= _SHAPES_MAX:
            _SHAPES.clear()
        _SHAPES[skeleton] = gaps
    return gaps


# Escaped values already resolved (paired text as _scan_all_quoted sees it, to the text and
# whether it is unsafe). Free text with escapes (a description, a realm) is the same in every 402
# a route sends; base64url and token values hold no backslash and never get here. Bounded as
# _SHAPES is.
_UNQUOTED: dict[str, tuple[str, bool]] = {}
_UNQUOTED_MAX_LENGTH = 512


def _unquote_scanned(paired: str) -> tuple[str, bool]:
    # A quoted-pair only yields a character already in the (safe) field value; a \uXXXX
    # escape can spell any character, so that text is searched again.
    text = _unquote_paired(paired)
    known = (text, "\\u" in paired and _UNSAFE(text) is not None)
    if len(paired) <= _UNQUOTED_MAX_LENGTH:
        if len(_UNQUOTED) >= _SHAPES_MAX:
            _UNQUOTED.clear()
        _UNQUOTED[paired] = known
    return known


def _scan_well_formed(value: str) -> list[RawChallenge] | None:
    """The common case in one C-level pass: None as soon as anything needs the careful scan.

    Gives exactly what :func:`_scan_any` gives whenever it does not give None (a property
    test holds the two together).
    """
    challenges: list[RawChallenge] = []
    current: RawChallenge | None = None
    params: dict[str, str] = {}
    after_scheme = False
    # One search of the whole value instead of one per parameter: a quoted string without a
    # backslash is a substring of the value, so it can only hold an unsafe character if the
    # value does. Unquoted text (``\\uXXXX`` escapes can make any character) is still checked.
    clean = _UNSAFE(value) is None
    for name, quoted, bare, scheme, space, junk in _ELEMENTS(value):
        if name:
            after_scheme = False
            if current is None:
                continue
            name = name.lower()
            if name in params:
                current.defect = current.defect or f"duplicate {name} parameter"
            elif quoted:
                if "\\" not in quoted:
                    text = quoted
                    unsafe = not clean and _UNSAFE(text) is not None
                else:
                    text = unquote(quoted)
                    unsafe = _UNSAFE(text) is not None
                if unsafe:
                    current.defect = current.defect or _unsafe_defect(name)
                params[name] = text
            else:
                params[name] = bare
        elif scheme:
            if after_scheme:
                return None  # a token68 after "scheme SP": the careful scan decides
            current = RawChallenge(scheme.lower())
            params = current.params
            challenges.append(current)
            after_scheme = bool(space)
        elif junk:
            return None
    return challenges


def _scan_any(value: str) -> list[RawChallenge]:
    """Scan any value, recovering from junk, stray quotes and unterminated strings."""
    challenges: list[RawChallenge] = []
    current: RawChallenge | None = None
    params: dict[str, str] = {}
    # True right after "scheme SP": a non-param element there is a token68, not a new scheme.
    after_scheme = False
    pos = 0
    size = len(value)
    while pos < size:
        match = _PARAM(value, pos)
        if match is not None:
            name, quoted, bare = match.groups()
            pos = match.end()
        else:
            match = _PARAM_WITH_TAIL(value, pos)
            if match is not None:
                name, quoted = match.groups()
                bare = ""
                pos = _junk_end(value, match.end())
        if match is not None:
            after_scheme = False
            if current is None:
                continue
            name = name.lower()
            if name in params:
                current.defect = current.defect or f"duplicate {name} parameter"
                continue
            text = unquote(quoted) if quoted is not None else bare
            if _UNSAFE(text):
                current.defect = current.defect or _unsafe_defect(name)
            params[name] = text
            continue
        if after_scheme and value[pos] == ",":
            after_scheme = False  # "scheme SP ,": the scheme has no parameters; not a token68
        if not after_scheme:
            match = _SCHEME(value, pos)
            if match is not None:
                current = RawChallenge(match.group(1).lower())
                params = current.params
                challenges.append(current)
                after_scheme = match.group(2) is not None
                pos = match.end()
                continue
        elif current is not None:
            current.defect = current.defect or "token68 where auth-params were expected"
        after_scheme = False
        pos = _junk_end(value, pos)
    return challenges
