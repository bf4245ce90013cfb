"""May this notice change state? Sender domain on the trusted list, authenticated by our own boundary MTA.

Rule (design.md §7):
1. The message has exactly one From address, and its domain is ASCII and equals a trusted domain or is a
   subdomain of it. Look-alikes (``dwp.gov.uk.evil.com``, ``dwp-gov.uk``, ``dvvp.gov.uk``, punycode or other
   Unicode spellings) never match, because the comparison is on whole DNS labels of a plain ASCII name.
2. With ``require_authentication``: an ``Authentication-Results`` header (RFC 8601) whose authserv-id is one
   of ours shows ``dmarc=pass`` with ``header.from`` equal to the sender domain, or ``dkim=pass`` with
   ``header.d`` (or the domain of ``header.i``) equal to the sender domain or a parent of it that is itself
   inside the trusted domain. A ``dmarc=fail`` for the sender domain from one of ours overrides any pass.
   Headers with any other authserv-id are ignored: anyone can write them. Our boundary MTA must remove
   incoming headers that carry its own authserv-id (RFC 8601 §5); nothing in a message can prove that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from parsers.types import ParsedMessage, TrustVerdict

__all__ = ["AuthResult", "AuthenticationResults", "assess_trust", "is_within", "parse_authentication_results"]

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class AuthResult:
    """One result from an Authentication-Results header: ``dkim=pass header.d=example.org``."""

    method: str
    result: str
    properties: tuple[tuple[str, str], ...] = ()
    reason: str | None = None

    def prop(self, name: str) -> str:
        """The value of property `name` ("header.d"), or "" when absent."""
        return next((value for key, value in self.properties if key == name), "")


@dataclass(frozen=True)
class AuthenticationResults:
    """A parsed Authentication-Results header: who wrote it and what it found."""

    authserv_id: str
    results: tuple[AuthResult, ...]


def assess_trust(
    msg: ParsedMessage,
    *,
    trusted_domains: tuple[str, ...],
    authserv_ids: tuple[str, ...],
    require_authentication: bool,
) -> TrustVerdict:
    """Whether the notice may change state, with the reason in one line."""
    if len(msg.from_addresses) != 1:
        count = len(msg.from_addresses)
        return TrustVerdict(False, f"message has {count} From addresses; exactly one is required")
    domain = msg.sender_domain
    trusted = next((t for t in _normalised(trusted_domains) if is_within(domain, t)), None)
    if trusted is None:
        return TrustVerdict(False, f"sender domain {_printable(domain)} is not a trusted domain")
    if not require_authentication:
        return TrustVerdict(True, f"sender domain {domain} is within {trusted}; authentication not required")
    return _authenticated(msg, domain, trusted, _normalised(authserv_ids))


def _normalised(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name.strip().lower().rstrip(".") for name in names if name.strip())


def _printable(domain: str) -> str:
    return repr(domain.encode("ascii", "backslashreplace").decode("ascii")[:80]) if domain else "(none)"


def is_within(domain: str, parent: str) -> bool:
    """`domain` equals `parent` or is a subdomain of it, both plain ASCII host names."""
    if not _is_hostname(domain) or not _is_hostname(parent):
        return False
    return domain == parent or domain.endswith("." + parent)


def _is_hostname(name: str) -> bool:
    if not name or not name.isascii() or len(name) > 253:
        return False
    # Punycode labels are refused outright: a trusted domain has no reason to use them, a look-alike does.
    return all(_LABEL.match(label) and not label.startswith("xn--") for label in name.split("."))


def _authenticated(
    msg: ParsedMessage, domain: str, trusted: str, authserv_ids: tuple[str, ...]
) -> TrustVerdict:
    parsed = map(parse_authentication_results, msg.header_all("Authentication-Results"))
    ours = [header for header in parsed if header is not None and header.authserv_id in authserv_ids]
    if not ours:
        return TrustVerdict(False, "no Authentication-Results header from a configured authserv-id")
    results = [(header.authserv_id, result) for header in ours for result in header.results]
    for authserv_id, result in results:
        if result.method == "dmarc" and result.result == "fail" and _prop(result, "header.from") == domain:
            return TrustVerdict(False, f"DMARC fail for {domain} reported by {authserv_id}")
    for authserv_id, result in results:
        if result.method == "dmarc" and result.result == "pass" and _prop(result, "header.from") == domain:
            return TrustVerdict(
                True, f"sender domain {domain} is trusted; DMARC pass reported by {authserv_id}"
            )
    for authserv_id, result in results:
        signer = _dkim_signer(result)
        if signer and is_within(domain, signer) and is_within(signer, trusted):
            return TrustVerdict(
                True, f"sender domain {domain} is trusted; DKIM pass for {signer} by {authserv_id}"
            )
    return TrustVerdict(False, f"no DMARC or aligned DKIM pass for {domain} from a configured authserv-id")


def _prop(result: AuthResult, name: str) -> str:
    """A domain-valued property, lower-cased; for "user@domain" values (header.i) the domain part."""
    return result.prop(name).rpartition("@")[2].lower().rstrip(".")


def _dkim_signer(result: AuthResult) -> str | None:
    if result.method != "dkim" or result.result != "pass":
        return None
    return _prop(result, "header.d") or _prop(result, "header.i") or None


# --- RFC 8601 parsing ------------------------------------------------------------------------------------


def parse_authentication_results(value: str) -> AuthenticationResults | None:
    """Parse one Authentication-Results value; None when it has no authserv-id.

    Comments (nested parentheses) are dropped, quoted strings are kept whole, names are case-insensitive.
    """
    segments = _split_outside_quotes(_strip_comments(value), ";")
    head = _tokens(segments[0]) if segments else []
    if not head:
        return None
    authserv_id = _unquote(head[0]).lower().rstrip(".")
    results = tuple(result for result in map(_parse_resinfo, segments[1:]) if result is not None)
    return AuthenticationResults(authserv_id=authserv_id, results=results)


def _strip_comments(value: str) -> str:
    out: list[str] = []
    depth = 0
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(char)
            continue
        if char == "\\":
            escaped = True
            if depth == 0:
                out.append(char)
        elif quoted:
            quoted = char != '"'
            out.append(char)
        elif char == '"' and depth == 0:
            quoted = True
            out.append(char)
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
            out.append(" ")
        elif depth == 0:
            out.append(char)
    return "".join(out)


def _split_outside_quotes(value: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


# A token is a quoted string or a run of anything but whitespace, "=" and quotes; "=" is its own token.
# CFWS is allowed around the "." of "ptype.property" (RFC 8601 §2.2): "header . d" is "header.d".
_DOT_SPACING = re.compile(r"(?<=[A-Za-z])\s*\.\s*(?=[A-Za-z])")
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|=|[^\s="]+')


def _tokens(segment: str) -> list[str]:
    return _TOKEN.findall(segment)


def _parse_resinfo(segment: str) -> AuthResult | None:
    """``method[/version] = result [reason=value] [ptype.property=value]...``; None if not of that shape."""
    tokens = _join_equals(_tokens(_DOT_SPACING.sub(".", segment)))
    if not tokens or "=" not in tokens[0]:
        return None
    method, _, result = tokens[0].partition("=")
    method = method.split("/")[0].strip().lower()
    if not method or not result:
        return None
    properties: list[tuple[str, str]] = []
    reason: str | None = None
    for token in tokens[1:]:
        name, equals, raw = token.partition("=")
        if not equals:
            continue
        name = name.strip().lower()
        if name == "reason":
            reason = _unquote(raw)
        elif "." in name:
            properties.append((name, _unquote(raw)))
    return AuthResult(
        method=method, result=_unquote(result).lower(), properties=tuple(properties), reason=reason
    )


def _join_equals(tokens: list[str]) -> list[str]:
    """Glue ``name`` ``=`` ``value`` (CFWS allowed around "=", RFC 8601 §2.2) back into ``name=value``."""
    joined: list[str] = []
    index = 0
    while index < len(tokens):
        if tokens[index] == "=" and joined and index + 1 < len(tokens):
            joined[-1] = f"{joined[-1]}={tokens[index + 1]}"
            index += 2
            continue
        joined.append(tokens[index])
        index += 1
    return joined


def _unquote(value: str) -> str:
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value
