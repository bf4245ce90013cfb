"""IMAP fetch baseline: bare imapclient against the mailbox edge (`mailroom.mailbox`) on a throwaway Dovecot.

    .venv/bin/python bench/imap_raw.py [--messages 1000] [--size-kb 72] [--batch 100] [--wakes 20]

Loads N messages of about SIZE KB (a DWP-style notice with a base64 attachment) into a folder, then fetches
them all with plain imapclient (UID SEARCH, FETCH BODY.PEEK[] in batches: the fastest a Python client
gets) and through `Mailbox.fetch_since`, alternately, twice each, and prints the better rate of each and
the ratio.
Then it delivers messages one at a time by LMTP while the edge idles and prints the delivery → wake-up
latency (Dovecot batches its change notifications for 0.5 s, harness.md §2, so ~0.5 s is the floor).

`raw_fetch` is importable: bench/inbox.py uses it as the baseline for the full pipeline.
"""

from __future__ import annotations

import argparse
import base64
import random
import ssl
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from imapclient import IMAPClient  # noqa: E402

from mailroom.edges.imap import ImapOptions  # noqa: E402
from mailroom.edges.mailbox import Mailbox  # noqa: E402
from tests.support.dovecot import ALICE, Dovecot  # noqa: E402

FOLDER = "Bench"


@dataclass(frozen=True)
class FetchFigures:
    messages: int
    octets: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def mb_per_second(self) -> float:
        return self.octets / 1e6 / self.seconds if self.seconds else 0.0

    def line(self, label: str) -> str:
        return (
            f"{label:<22} {self.messages:>6} msgs {self.octets / 1e6:>8.1f} MB {self.seconds:>7.2f} s "
            f"{self.per_second:>8.0f} msg/s {self.mb_per_second:>7.1f} MB/s"
        )


def raw_fetch(
    host: str,
    port: int,
    context: ssl.SSLContext,
    username: str,
    password: str,
    folder: str,
    *,
    batch: int = 100,
) -> FetchFigures:
    """Fetch every message of `folder` over IMAPS with bare imapclient; the timing excludes the login."""
    with IMAPClient(host, port=port, ssl=True, ssl_context=context, timeout=60) as client:
        client.login(username, password)
        started = time.perf_counter()
        client.select_folder(folder, readonly=True)
        uids = sorted(client.search(["UID", "1:*"]))
        octets = count = 0
        for first in range(0, len(uids), batch):
            data = client.fetch(uids[first : first + batch], [b"BODY.PEEK[]", b"INTERNALDATE"])
            for item in data.values():
                octets += len(item[b"BODY[]"])
                count += 1
        return FetchFigures(count, octets, time.perf_counter() - started)


def edge_fetch(options: ImapOptions, folder: str, *, batch: int = 100) -> FetchFigures:
    """The same through `Mailbox.fetch_since(folder, 0)`; the timing excludes connect and login."""
    with Mailbox(options) as box:
        started = time.perf_counter()
        octets = count = 0
        for message in box.fetch_since(folder, 0, batch=batch):
            octets += len(message.raw)
            count += 1
        return FetchFigures(count, octets, time.perf_counter() - started)


def notice(number: int, size_kb: int, rng: random.Random) -> bytes:
    """A DWP-style notice of about `size_kb` KB: headers, a short text part and a base64 attachment."""
    attachment = base64.encodebytes(rng.randbytes(size_kb * 750)).decode()
    return (
        "From: DWP Access to Work <accesstowork.mhss@dwp.gov.uk>\r\n"
        "To: reports@provider.example\r\n"
        f"Subject: Automatic reply: MHSS report MH-{100000 + number} [S-{number:06d}]\r\n"
        f"Message-ID: <bench-{number}@dwp.example>\r\n"
        "Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Thank you for your email. This is an automated response.\r\n"
        '--b\r\nContent-Type: application/pdf; name="r.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        f"{attachment.replace(chr(10), chr(13) + chr(10))}--b--\r\n"
    ).encode()


def load(server: Dovecot, count: int, size_kb: int) -> float:
    rng = random.Random(20260302)
    started = time.perf_counter()
    with server.session(ALICE) as client:
        client.create_folder(FOLDER)
        for number in range(count):
            client.append(FOLDER, notice(number, size_kb, rng))
    return time.perf_counter() - started


def _deliver_soon(server: Dovecot, number: int) -> float:
    time.sleep(0.05)  # let the caller get into IDLE first
    started = time.perf_counter()
    server.deliver_lmtp(ALICE, notice(number, 1, random.Random(number)))
    return started


def idle_wakes(server: Dovecot, options: ImapOptions, count: int) -> list[float]:
    """Seconds from the start of each LMTP delivery to `wait_for_change` returning True."""
    latencies: list[float] = []
    with Mailbox(options) as box, ThreadPoolExecutor(max_workers=1) as pool:
        last = max((m.uid for m in box.fetch_since("INBOX", 0)), default=0)
        for number in range(count):
            delivery = pool.submit(_deliver_soon, server, number)
            woke = box.wait_for_change("INBOX", timeout=10)
            woke_at = time.perf_counter()
            latencies.append(woke_at - delivery.result() if woke else float("nan"))
            last = max([last, *(m.uid for m in box.fetch_since("INBOX", last))])
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--size-kb", type=int, default=72)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--wakes", type=int, default=20)
    args = parser.parse_args()

    with Dovecot() as server:
        loading = load(server, args.messages, args.size_kb)
        print(f"loaded {args.messages} messages of ~{args.size_kb} KB in {loading:.1f} s")
        options = ImapOptions(
            host=server.host,
            port=server.imaps_port,
            username=ALICE,
            password=server.password(ALICE),
            ca_file=server.ca_file,
            processed_folder="Bench-Processed",
            quarantine_folder="Bench-Quarantine",
        )
        context, password = server.ssl_context(), server.password(ALICE)
        runs: list[tuple[FetchFigures, FetchFigures]] = []
        for _ in range(2):  # alternate, and keep the faster of each, so cache warmth favours neither
            raw = raw_fetch(
                server.host, server.imaps_port, context, ALICE, password, FOLDER, batch=args.batch
            )
            runs.append((raw, edge_fetch(options, FOLDER, batch=args.batch)))
        raw = min((r for r, _ in runs), key=lambda f: f.seconds)
        edge = min((e for _, e in runs), key=lambda f: f.seconds)
        print(raw.line(f"raw imapclient b={args.batch}"))
        print(edge.line("Mailbox.fetch_since"))
        print(f"ratio edge/raw         {edge.per_second / raw.per_second:.2f}")
        if args.wakes:
            print_wakes(idle_wakes(server, options, args.wakes))


def print_wakes(latencies: list[float]) -> None:
    wakes = sorted(latencies)
    p95 = wakes[min(len(wakes) - 1, round(0.95 * (len(wakes) - 1)))]
    median = statistics.median(wakes)
    print(f"IDLE wake after LMTP   n={len(wakes)} p50 {median:.3f} s p95 {p95:.3f} s max {wakes[-1]:.3f} s")


if __name__ == "__main__":
    main()
