"""The outbound allow-list: misdirected mail is the classic data incident, so it is stopped before SMTP.

Matching is on the whole address, case-insensitively (local parts are case-sensitive in theory; no relay
we send through treats them so, and a case slip must not let mail through or block a real address).
There are no wildcards: a whole domain is allowed only when listed in `domains`, which is empty unless a
deployment asks for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from outbox.compose import check_address
from outbox.errors import RecipientNotAllowed


@dataclass(frozen=True)
class AllowList:
    addresses: frozenset[str]
    domains: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        # Validate and fold case once, so a typo like "*@dwp.gov.uk" fails at startup, not at send time.
        if any("*" in entry for entry in self.addresses):
            raise ValueError("allow-list entry: wildcards are not supported; list the domain in `domains`")
        addresses = frozenset(check_address(a, "allow-list entry").lower() for a in self.addresses)
        domains = frozenset(d.lower().lstrip("@") for d in self.domains)
        for domain in domains:
            check_address(f"postmaster@{domain}", "allow-list domain")
        object.__setattr__(self, "addresses", addresses)
        object.__setattr__(self, "domains", domains)

    def allows(self, address: str) -> bool:
        folded = address.lower()
        local, at, domain = folded.rpartition("@")
        return folded in self.addresses or (bool(local) and bool(at) and domain in self.domains)

    def check(self, recipients: Iterable[str]) -> None:
        """Raise RecipientNotAllowed if any recipient is not allowed (or there are none)."""
        recipients = tuple(recipients)
        if not recipients:
            raise RecipientNotAllowed("no recipients given")
        refused = [r for r in recipients if not self.allows(r)]
        if refused:
            shown = ", ".join(mask_address(r) for r in refused)
            raise RecipientNotAllowed(
                f"{len(refused)} of {len(recipients)} recipient(s) not on the outbound allow-list: {shown}"
            )


def mask_address(address: str) -> str:
    """`j***@example.org`: enough for an operator to recognise, not a stranger's full address in a log."""
    local, at, domain = address.strip().rpartition("@")
    if not at:
        return "(not an address)"
    return f"{local[:1]}***@{domain}"
