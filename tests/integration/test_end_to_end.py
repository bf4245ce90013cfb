"""A report's whole life with real parts: CLI → relay → DWP's replies in Dovecot → clocks → escalation.

Time moves only through `run --once --at` (test_mode). Each test reads its own IMAP folder, so tests do not
see each other's mail.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest

from mailroom.daemon.app import build
from mailroom.daemon.runners import Heartbeat
from mailroom.edges.configfile import load_settings
from mailroom.harness import dwp
from mailroom.harness.gpg import GpgHome
from tests.conftest import Env
from tests.integration.conftest import own_folders
from tests.support import ndr, pdfs
from tests.support.dovecot import ALICE, Dovecot
from tests.support.smtpd import SmtpServer

pytestmark = pytest.mark.integration

AUTHSERV = "mx.provider.example"
PM = "pm@dwp.gov.uk"
TEAM = "team@provider.example"


class World:
    """One test's mailroom, relay and mailbox folder, with the steps a report goes through."""

    def __init__(self, env: Env, relay: SmtpServer, dovecot: Dovecot, folder: str) -> None:
        self.env, self.relay, self.dovecot, self.folder = env, relay, dovecot, folder

    def cli(self, *args: str) -> Any:
        result = self.env.run(*args, "--json")
        assert result.code == 0, result.err
        return json.loads(result.out)

    def submit(self, *extra: str) -> dict[str, Any]:
        path = self.env.root / f"{uuid.uuid4().hex}.pdf"
        path.write_bytes(pdfs.arial_12_report())
        return dict(self.cli("submit", str(path), "--case", "MH-100001", "--type", "support-plan", *extra))

    def run(self, at: datetime | None = None) -> dict[str, Any]:
        return dict(self.cli("run", "--once", *(["--at", at.isoformat()] if at else [])))

    def sent_to_dwp(self) -> list[EmailMessage]:
        return [
            message_from_bytes(m.content, policy=policy.default)  # type: ignore[misc]
            for m in self.relay.messages
            if dwp.DWP_INBOX in m.rcpt_tos
        ]

    def notices_to(self, address: str) -> list[EmailMessage]:
        return [
            message_from_bytes(m.content, policy=policy.default)  # type: ignore[misc]
            for m in self.relay.messages
            if address in m.rcpt_tos and dwp.DWP_INBOX not in m.rcpt_tos
        ]

    def deliver(self, message: EmailMessage | bytes) -> None:
        raw = message if isinstance(message, bytes) else message.as_bytes()
        self.dovecot.append(ALICE, self.folder, raw)

    def case(self) -> dict[str, Any]:
        return dict(self.cli("case", "show", "MH-100001"))

    def folder_count(self, name: str) -> int:
        with self.dovecot.session(ALICE) as client:
            if not client.folder_exists(name):
                return 0
            return int(client.folder_status(name, ["MESSAGES"])[b"MESSAGES"])

    def clock(self, kind: str) -> dict[str, Any]:
        return next(c for c in self.case()["clocks"] if c["kind"] == kind and c["state"] == "running")


@pytest.fixture
def world(make_daemon_env: Callable[..., Env], relay: SmtpServer, dovecot: Dovecot) -> World:
    folder, folders = own_folders(dovecot, "T")
    env = make_daemon_env(mailbox=dovecot, imap=folders)
    assert env.run("case", "add", "MH-100001").code == 0
    return World(env, relay, dovecot, folder)


def sent_and_acknowledged(world: World) -> EmailMessage:
    world.submit()
    world.run()
    [report] = world.sent_to_dwp()
    world.deliver(dwp.acknowledgement(report, now=datetime.now().astimezone(), authserv_id=AUTHSERV))
    world.run()
    return report


def test_an_acknowledgement_is_applied_once_and_filed(world: World) -> None:
    sent_and_acknowledged(world)
    submission = world.case()["submissions"][0]
    assert submission["state"] == "acknowledged" and submission["acknowledged_at"]
    assert world.folder_count(f"{world.folder}/Processed") == 1
    assert world.folder_count(world.folder) == 0
    ack_clock = next(c for c in world.case()["clocks"] if c["kind"] == "acknowledgement")
    assert ack_clock["state"] == "met"
    # The same notice delivered again, with a new trace header, changes nothing.
    world.deliver(b"Received: by mx.provider.example; again\r\n" + world_first_ack(world))
    world.run()
    timeline = [e["action"] for e in world.case()["submissions"][0]["timeline"]]
    assert timeline.count("acknowledged") == 1


def test_a_move_cut_off_after_the_commit_is_finished_on_the_next_connection(world: World) -> None:
    # The state a kill -9 (or a dropped connection) leaves between committing a notice and moving it.
    world.submit()
    world.run()
    [report] = world.sent_to_dwp()
    world.deliver(dwp.acknowledgement(report, now=datetime.now().astimezone(), authserv_id=AUTHSERV))
    watcher = build(load_settings(world.env.config)).watcher
    assert watcher is not None
    with watcher.mailbox:
        [fetched] = watcher.mailbox.fetch_since(world.folder, 0)
        watcher.inbox.ingest(
            fetched.raw, mailbox=watcher.key, uidvalidity=fetched.uidvalidity, uid=fetched.uid
        )
    assert world.folder_count(world.folder) == 1
    assert world.case()["submissions"][0]["state"] == "acknowledged"

    world.run()

    assert world.folder_count(world.folder) == 0
    assert world.folder_count(f"{world.folder}/Processed") == 1
    timeline = [e["action"] for e in world.case()["submissions"][0]["timeline"]]
    assert timeline.count("acknowledged") == 1


def world_first_ack(world: World) -> bytes:
    with world.dovecot.session(ALICE) as client:
        client.select_folder(f"{world.folder}/Processed")
        uid = client.search(["ALL"])[0]
        return bytes(client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"])


def test_no_acknowledgement_escalates_once(world: World) -> None:
    world.submit()
    world.run()
    due = datetime.fromisoformat(world.clock("acknowledgement")["due_at"])
    world.run(due + timedelta(hours=1))
    [escalation] = world.notices_to(PM)
    assert escalation["Auto-Submitted"] == "auto-generated"
    assert "MH-100001" in escalation["Subject"] and "no acknowledgement" in escalation["Subject"]
    body = escalation.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert world.sent_to_dwp()[0]["Message-ID"] in body and "250" in body
    world.run(due + timedelta(hours=2))
    assert len(world.notices_to(PM)) == 1
    assert [e["level"] for e in world.case()["escalations"]] == ["escalation-1"]


def test_rejection_reminders_breach_and_resubmission(world: World) -> None:
    report = sent_and_acknowledged(world)
    world.deliver(
        dwp.rejection(
            report,
            ["employment-status-missing"],
            now=datetime.now().astimezone(),
            authserv_id=AUTHSERV,
            case_ref="MH-100001",
        )
    )
    world.run()
    rejected = world.case()["submissions"][0]
    assert rejected["state"] == "rejected"
    assert rejected["rejection_reasons"] == ["employment-status-missing"]
    correction = world.clock("correction")
    due = datetime.fromisoformat(correction["due_at"])

    preview = world.cli("clocks", "--as-of", (due - timedelta(days=0)).date().isoformat())
    assert any(f["level"] == "escalation-1" for c in preview["clocks"] for f in c["fires"])

    # The day before the deadline: the team has been reminded (stale reminders are skipped, never late).
    world.run(due - timedelta(hours=2))
    reminders = world.notices_to(TEAM)
    assert reminders and all("reminder" in r["Subject"] for r in reminders)
    assert world.notices_to(PM) == []

    world.run(due + timedelta(hours=1))
    world.run(due + timedelta(hours=2))
    assert len(world.notices_to(PM)) == 1  # once, however often the sweep runs

    world.submit("--supersedes", str(rejected["id"]))
    world.run(due + timedelta(hours=3))
    states = [s["state"] for s in world.case()["submissions"]]
    assert states == ["superseded", "sent"]
    clocks = {(c["kind"], c["submission_id"]): c["state"] for c in world.case()["clocks"]}
    assert clocks[("correction", rejected["id"])] == "met"


def test_untrusted_notice_is_quarantined_until_a_person_assigns_it(world: World) -> None:
    world.submit()
    world.run()
    [report] = world.sent_to_dwp()
    forged = dwp.rejection(
        report,
        ["format"],
        now=datetime.now().astimezone(),
        authserv_id="mx.attacker.example",
        case_ref="MH-100001",
    )
    world.deliver(forged)
    world.run()
    assert world.case()["submissions"][0]["state"] == "sent"
    assert world.folder_count(f"{world.folder}/Quarantine") == 1
    [waiting] = world.cli("inbox")
    assert waiting["state"] == "quarantined" and waiting["kind"] == "rejection"
    world.cli("inbox", "assign", str(waiting["id"]), "MH-100001")
    assert world.case()["submissions"][0]["state"] == "rejected"
    assert world.cli("inbox") == []


def test_a_persons_out_of_office_changes_nothing_and_stays_in_the_inbox(world: World) -> None:
    world.submit()
    world.run()
    [report] = world.sent_to_dwp()
    ooo = EmailMessage()
    ooo["From"] = "Jo Bloggs <jo.bloggs@dwp.gov.uk>"
    ooo["To"] = "reports@provider.example"
    ooo["Subject"] = f"Automatic reply: {report['Subject']}"
    ooo["Message-ID"] = "<ooo-1@dwp.gov.uk>"
    ooo["In-Reply-To"] = str(report["Message-ID"])
    ooo["Auto-Submitted"] = "auto-replied"
    ooo["Authentication-Results"] = f"{AUTHSERV}; dmarc=pass header.from=dwp.gov.uk"
    ooo.set_content("I am out of the office until Monday with limited access to email.\n")
    world.deliver(ooo)
    world.run()
    assert world.case()["submissions"][0]["state"] == "sent"
    assert world.folder_count(world.folder) == 1
    assert world.cli("inbox", "--state", "ignored")[0]["kind"] == "auto_reply"


def unlisted_rejection(report: EmailMessage) -> EmailMessage:
    """DWP's caseworker in words no rule lists, with only one half of a rejection: a negative outcome."""
    reply = EmailMessage()
    reply["From"] = "Sam Patel <sam.patel@dwp.gov.uk>"
    reply["To"] = "reports@provider.example"
    reply["Subject"] = f"RE: {report['Subject']}"
    reply["Message-ID"] = f"<{uuid.uuid4().hex}@dwp.gov.uk>"
    reply["In-Reply-To"] = str(report["Message-ID"])
    reply["References"] = str(report["Message-ID"])
    reply["Authentication-Results"] = (
        f"{AUTHSERV}; dkim=pass header.d=dwp.gov.uk; spf=pass smtp.mailfrom=dwp.gov.uk; "
        "dmarc=pass header.from=dwp.gov.uk"
    )
    reply.set_content(
        "Hello,\n\nThank you for the support plan. I'm afraid it cannot be processed in its current form."
        "\n\nKind regards\nSam Patel\nAccess to Work\n"
    )
    return reply


def test_a_rejection_in_unlisted_wording_waits_for_a_person_and_applies_from_its_arrival(
    world: World,
) -> None:
    world.submit()
    world.run()
    [report] = world.sent_to_dwp()
    world.dovecot.deliver_lmtp(ALICE, unlisted_rejection(report).as_bytes(), folder=world.folder)
    world.run()

    [waiting] = world.cli("inbox", "--state", "needs_review")
    assert waiting["case_ref"] == "MH-100001" and waiting["review"]
    assert world.folder_count(world.folder) == 0  # filed out of INBOX, into the review folder
    assert world.folder_count(f"{world.folder}/Quarantine") == 1
    alerts = [n for n in world.notices_to(TEAM) if "needs review" in str(n["Subject"])]
    assert len(alerts) == 1 and "MH-100001" in str(alerts[0]["Subject"])
    assert "current form" not in alerts[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert world.case()["submissions"][0]["state"] == "sent"  # no clock on half a rejection

    world.run()  # the next sweep: nothing new for anyone
    assert len([n for n in world.notices_to(TEAM) if "needs review" in str(n["Subject"])]) == 1

    world.cli("inbox", "assign", str(waiting["id"]), "MH-100001", "--as", "rejection")
    assert world.case()["submissions"][0]["state"] == "rejected"
    # From the arrival (the server's INTERNALDATE, whole seconds), not from the person's decision.
    assert world.clock("correction")["started_at"] == waiting["received_at"]
    assert world.cli("inbox") == []


def test_bounces_from_dwp_systems_fail_their_reports_and_a_delay_changes_nothing(world: World) -> None:
    world.submit()
    pdf = world.env.root / "six-month.pdf"
    pdf.write_bytes(pdfs.arial_12_report(report_type="six-month-report"))
    world.cli("submit", str(pdf), "--case", "MH-100001", "--type", "six-month-report")
    world.run()
    plan, six_month = sorted(world.sent_to_dwp(), key=lambda m: "Six Month" in str(m["Subject"]))
    now = datetime.now().astimezone()
    world.dovecot.deliver_lmtp(ALICE, ndr.postfix_delay(plan, now=now), folder=world.folder)
    world.run()
    assert [s["state"] for s in world.case()["submissions"]] == ["sent", "sent"]  # a delay is a note
    assert "delivery-delayed" in [e["action"] for e in world.case()["submissions"][0]["timeline"]]

    world.dovecot.deliver_lmtp(ALICE, ndr.m365_ndr(plan, now=now), folder=world.folder)
    world.dovecot.deliver_lmtp(ALICE, ndr.mimecast_ndr(six_month, now=now), folder=world.folder)
    world.run()
    world.run()  # the next sweep: nothing more for anyone

    case = world.case()
    assert [s["state"] for s in case["submissions"]] == ["failed", "failed"]
    failures = [n for n in world.notices_to(TEAM) if "send failure" in str(n["Subject"])]
    assert sorted(str(n["Subject"]).split("[")[1][:8] for n in failures) == sorted(
        f"S-{s['id']:06d}" for s in case["submissions"]
    )
    assert not any(c["kind"] == "correction" for c in case["clocks"])
    assert case["escalations"] == [] and world.notices_to(PM) == []
    assert world.folder_count(f"{world.folder}/Processed") == 3 and world.folder_count(world.folder) == 0


def test_a_recreated_folder_is_read_again_but_nothing_is_applied_twice(world: World) -> None:
    sent_and_acknowledged(world)
    raw = world_first_ack(world)
    before = world.case()["submissions"][0]["timeline"]
    world.dovecot.recreate_folder(ALICE, world.folder)  # new UIDVALIDITY
    world.deliver(raw)
    world.run()
    assert world.case()["submissions"][0]["timeline"] == before
    # The copy was encrypted with its batch before it was known to be a copy; it leaves no orphan file.
    with sqlite3.connect(world.env.db_path) as db:
        [(rows,)] = db.execute("SELECT count(*) FROM inbound_messages").fetchall()
    assert len(list((world.env.root / "documents" / "inbound").iterdir())) == rows


def test_when_gpg_cannot_store_mail_nothing_is_read_until_it_can(
    make_daemon_env: Callable[..., Env], dovecot: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    folder, folders = own_folders(dovecot, "T")
    with GpgHome() as home:
        key = home.generate_key("records@provider.example")
        env = make_daemon_env(
            mailbox=dovecot,
            imap=folders,
            gpg={"home": str(home.path), "recipients": [key.fingerprint]},
        )
        dovecot.append(
            ALICE, folder, b"From: a@dwp.gov.uk\r\nSubject: hello\r\nMessage-ID: <g@dwp.gov.uk>\r\n\r\nhi\r\n"
        )
        watcher = build(load_settings(env.config)).watcher
        assert watcher is not None
        subprocess.run(
            [
                "gpg",
                "--homedir",
                str(home.path),
                "--batch",
                "--yes",
                "--delete-secret-and-public-key",
                key.fingerprint,
            ],
            check=True,
            capture_output=True,
        )

        async def run_briefly() -> None:
            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(1.5, stop.set)
            await watcher.run(stop, Heartbeat())

        asyncio.run(run_briefly())

    warnings = [
        r.getMessage() for r in caplog.records if "encrypted storage of inbound mail" in r.getMessage()
    ]
    assert len(warnings) == 1 and "unavailable" in warnings[0]
    with sqlite3.connect(env.db_path) as db:
        assert db.execute("SELECT count(*) FROM inbound_messages").fetchall() == [(0,)]
        assert db.execute("SELECT count(*) FROM folder_cursors WHERE last_uid > 0").fetchall() == [(0,)]
    with dovecot.session(ALICE) as client:
        client.select_folder(folder, readonly=True)
        assert len(client.search("ALL")) == 1  # still on the server, for when gpg works again
