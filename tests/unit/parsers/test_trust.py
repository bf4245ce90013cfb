"""assess_trust and the Authentication-Results parser: who may change state, and why."""

from __future__ import annotations

import pytest

from parsers.trust import AuthResult, assess_trust, is_within, parse_authentication_results
from parsers.types import ParsedMessage, TrustVerdict
from tests.unit.parsers.mail import AR_PASS, INBOX, message

OURS = ("mx.provider.example",)


def verdict(
    msg: ParsedMessage, *, require: bool = True, domains: tuple[str, ...] = ("dwp.gov.uk",)
) -> TrustVerdict:
    return assess_trust(msg, trusted_domains=domains, authserv_ids=OURS, require_authentication=require)


def from_dwp(*results: str, sender: str = INBOX) -> ParsedMessage:
    return message(sender=sender, headers=tuple(("Authentication-Results", value) for value in results))


class TestDomain:
    @pytest.mark.parametrize("domain", ["dwp.gov.uk", "mail.dwp.gov.uk", "a.b.dwp.gov.uk", "DWP.GOV.UK"])
    def test_trusted_domain_and_subdomains(self, domain: str) -> None:
        assert is_within(domain.lower(), "dwp.gov.uk")

    @pytest.mark.parametrize(
        "domain",
        [
            "dwp.gov.uk.evil.com",
            "dwp-gov.uk",
            "dvvp.gov.uk",
            "xdwp.gov.uk",
            "gov.uk",
            "dwp.gov.uk.",
            "",
            "xn--dwp-8cd.gov.uk",
            "xn--80ak6aa92e.dwp.gov.uk",
            "dw\u0440.gov.uk",
            "d\u200bwp.gov.uk",
            "[192.0.2.1]",
            "dwp..gov.uk",
            "-dwp.gov.uk",
            "dwp.gov.uk\x00.evil.com",
        ],
    )
    def test_look_alikes_never_match(self, domain: str) -> None:
        assert not is_within(domain, "dwp.gov.uk")

    def test_untrusted_domain_reason_names_it(self) -> None:
        result = verdict(message(sender="x@dwp-gov.uk"), require=False)
        assert result == TrustVerdict(False, "sender domain 'dwp-gov.uk' is not a trusted domain")

    def test_domain_alone_is_enough_when_authentication_is_off(self) -> None:
        result = verdict(message(sender="x@mail.dwp.gov.uk"), require=False)
        assert result.trusted
        assert "authentication not required" in result.reason

    def test_two_from_addresses_are_never_trusted(self) -> None:
        result = verdict(from_dwp(AR_PASS, sender=f"{INBOX}, {INBOX.replace('mhss', 'other')}"))
        assert result == TrustVerdict(False, "message has 2 From addresses; exactly one is required")

    def test_missing_from_is_never_trusted(self) -> None:
        assert not verdict(message(sender="undisclosed"), require=False).trusted


class TestAuthentication:
    def test_dmarc_pass_from_our_authserv_id(self) -> None:
        result = verdict(from_dwp(AR_PASS))
        assert result == TrustVerdict(
            True, "sender domain dwp.gov.uk is trusted; DMARC pass reported by mx.provider.example"
        )

    def test_no_header_from_our_authserv_id(self) -> None:
        result = verdict(from_dwp(AR_PASS.replace("mx.provider.example", "mx.evil.example")))
        assert result == TrustVerdict(False, "no Authentication-Results header from a configured authserv-id")

    def test_no_header_at_all(self) -> None:
        assert not verdict(from_dwp()).trusted

    def test_dmarc_pass_for_another_domain_does_not_count(self) -> None:
        assert not verdict(from_dwp("mx.provider.example; dmarc=pass header.from=evil.example")).trusted

    def test_dmarc_fail_overrides_a_pass(self) -> None:
        result = verdict(from_dwp(AR_PASS, "mx.provider.example; dmarc=fail header.from=dwp.gov.uk"))
        assert result == TrustVerdict(False, "DMARC fail for dwp.gov.uk reported by mx.provider.example")

    def test_dmarc_fail_from_a_foreign_authserv_id_is_ignored(self) -> None:
        assert verdict(from_dwp(AR_PASS, "mx.evil.example; dmarc=fail header.from=dwp.gov.uk")).trusted

    @pytest.mark.parametrize(
        ("sender", "signer", "trusted"),
        [
            (INBOX, "header.d=dwp.gov.uk", True),
            ("a@mail.dwp.gov.uk", "header.d=dwp.gov.uk", True),
            ("a@mail.dwp.gov.uk", "header.d=mail.dwp.gov.uk", True),
            (INBOX, "header.i=@dwp.gov.uk", True),
            (INBOX, "header.i=robot@dwp.gov.uk", True),
            (INBOX, "header.d=mail.dwp.gov.uk", False),
            (INBOX, "header.d=gov.uk", False),
            (INBOX, "header.d=evil.example", False),
            (INBOX, "header.d=dwp.gov.uk.evil.example", False),
        ],
    )
    def test_dkim_alignment(self, sender: str, signer: str, trusted: bool) -> None:
        result = verdict(from_dwp(f"mx.provider.example; dkim=pass {signer}", sender=sender))
        assert result.trusted is trusted

    @pytest.mark.parametrize("result", ["fail", "neutral", "none", "temperror", "policy"])
    def test_dkim_results_other_than_pass(self, result: str) -> None:
        assert not verdict(from_dwp(f"mx.provider.example; dkim={result} header.d=dwp.gov.uk")).trusted

    def test_passing_spf_alone_is_not_enough(self) -> None:
        assert not verdict(from_dwp("mx.provider.example; spf=pass smtp.mailfrom=dwp.gov.uk")).trusted

    def test_authserv_id_comparison_is_case_insensitive(self) -> None:
        assert verdict(from_dwp(AR_PASS.replace("mx.provider.example", "MX.Provider.Example"))).trusted


class TestParser:
    def test_full_header_with_comments_and_quotes(self) -> None:
        parsed = parse_authentication_results(
            "mx.provider.example 1; dkim=pass (2048-bit key; unprotected) header.d=dwp.gov.uk "
            'header.b="Ab;(c)"; dmarc=pass (p=REJECT sp=REJECT) header.from=DWP.gov.uk; '
            "spf = pass smtp.mailfrom=bounce@dwp.gov.uk"
        )
        assert parsed is not None
        assert parsed.authserv_id == "mx.provider.example"
        assert [(r.method, r.result) for r in parsed.results] == [
            ("dkim", "pass"),
            ("dmarc", "pass"),
            ("spf", "pass"),
        ]
        assert parsed.results[0].prop("header.b") == "Ab;(c)"
        assert parsed.results[1].prop("header.from") == "DWP.gov.uk"
        assert parsed.results[2].prop("smtp.mailfrom") == "bounce@dwp.gov.uk"

    def test_nested_comments_and_escaped_parentheses(self) -> None:
        parsed = parse_authentication_results(
            r"mx (outer (inner \) still) done); dkim=pass (x; dmarc=fail header.from=dwp.gov.uk) header.d=a.b"
        )
        assert parsed is not None
        assert parsed.results == (AuthResult("dkim", "pass", (("header.d", "a.b"),)),)

    def test_reason_and_version_and_spacing(self) -> None:
        parsed = parse_authentication_results(
            '"mx.provider.example"; dkim/1 = PASS reason="good; ok" header . d = x.y'
        )
        assert parsed is not None
        assert parsed.authserv_id == "mx.provider.example"
        assert parsed.results == (AuthResult("dkim", "pass", (("header.d", "x.y"),), reason="good; ok"),)

    def test_no_result(self) -> None:
        parsed = parse_authentication_results("mx.provider.example; none")
        assert parsed is not None and parsed.results == ()

    @pytest.mark.parametrize("value", ["", "   ", "(only a comment)", ";;"])
    def test_empty_values(self, value: str) -> None:
        parsed = parse_authentication_results(value)
        assert parsed is None or parsed.results == ()

    def test_garbage_results_are_skipped(self) -> None:
        parsed = parse_authentication_results("mx; nonsense; dkim=pass header.d=a.b; =; dmarc")
        assert parsed is not None
        assert [r.method for r in parsed.results] == ["dkim"]
