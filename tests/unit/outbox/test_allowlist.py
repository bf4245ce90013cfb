"""allow-list: exact addresses, any case, nothing else unless a domain is listed on purpose."""

from __future__ import annotations

import pytest

from outbox.allowlist import AllowList, mask_address
from outbox.errors import RecipientNotAllowed

DWP = "accesstowork.mhss@dwp.gov.uk"
ALLOWED = AllowList(frozenset({DWP, "Performance.Manager@DWP.gov.uk", "team@provider.example"}))


@pytest.mark.parametrize(
    "recipients",
    [
        (DWP,),
        ("ACCESSTOWORK.MHSS@DWP.GOV.UK",),
        ("performance.manager@dwp.gov.uk", "team@provider.example"),
    ],
)
def test_listed_addresses_pass_in_any_case(recipients: tuple[str, ...]) -> None:
    ALLOWED.check(recipients)


@pytest.mark.parametrize(
    "address",
    [
        "someone@dwp.gov.uk",  # same domain, other mailbox
        "accesstowork.mhss@dwp.gov.uk.evil.example",  # look-alike
        "accesstowork.mhss@dvvp.gov.uk",
        f" {DWP}",  # not the same string once sent
        f"Name <{DWP}>",
        "dwp.gov.uk",
    ],
)
def test_anything_else_is_refused(address: str) -> None:
    with pytest.raises(RecipientNotAllowed, match="1 of 2 recipient"):
        ALLOWED.check((DWP, address))


def test_refusal_names_the_address_only_masked() -> None:
    with pytest.raises(RecipientNotAllowed) as caught:
        ALLOWED.check(("jane.customer@gmail.example",))
    assert "j***@gmail.example" in str(caught.value)
    assert "jane.customer" not in str(caught.value)


def test_no_recipients_is_refused() -> None:
    with pytest.raises(RecipientNotAllowed, match="no recipients"):
        ALLOWED.check(())


def test_a_domain_is_allowed_only_when_listed_and_only_exactly() -> None:
    allow = AllowList(frozenset({DWP}), domains=frozenset({"Provider.example"}))
    allow.check(("anyone@provider.example", "ANYONE@PROVIDER.EXAMPLE"))
    for address in ("x@sub.provider.example", "x@provider.example.evil", "@provider.example"):
        assert not allow.allows(address)


@pytest.mark.parametrize("entry", ["*@dwp.gov.uk", "dwp.gov.uk", "a b@dwp.gov.uk", ""])
def test_entries_that_are_not_addresses_fail_at_construction(entry: str) -> None:
    with pytest.raises(ValueError, match="allow-list entry"):
        AllowList(frozenset({entry}))


def test_wildcard_domain_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="allow-list domain"):
        AllowList(frozenset({DWP}), domains=frozenset({"*.gov.uk"}))


@pytest.mark.parametrize(
    ("address", "masked"),
    [("jane@example.org", "j***@example.org"), ("@x", "***@x"), ("nope", "(not an address)")],
)
def test_mask_address(address: str, masked: str) -> None:
    assert mask_address(address) == masked
