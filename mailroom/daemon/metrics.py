"""Prometheus metrics: an HTTP endpoint (`[metrics] listen`) or a node_exporter textfile (`textfile`).

Read from the database at each scrape, so every daemon sharing it reports the same queue, and a scrape
never waits on the outbox. Labels are states, kinds, channels and SMTP reply classes: never a case
reference, an address or anything else about a person. prometheus_client is imported here only, by the
daemon, so the CLI does not pay for it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TypeVar
from wsgiref.simple_server import WSGIServer

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlmodel import Session

from mailroom.core.config import Settings, listen_address
from mailroom.service.outage import current_outages, last_contact
from mailroom.service.send_tally import send_counts
from mailroom.service.status import seen
from mailroom.store import overview

log = logging.getLogger(__name__)
Metric = GaugeMetricFamily | CounterMetricFamily
Labels = TypeVar("Labels", bound=tuple[str, ...])


class MailroomCollector(Collector):
    def __init__(self, engine: sa.Engine, settings: Settings, wall: Callable[[], datetime]) -> None:
        self.engine = engine
        self.settings = settings
        self.wall = wall

    def collect(self) -> Iterator[Metric]:
        ok = GaugeMetricFamily("mailroom_scrape_ok", "1 when the database could be read for this scrape")
        try:
            families = list(self._from_database())
        except sa.exc.SQLAlchemyError as exc:
            log.warning("metrics: database not readable: %s", exc.__class__.__name__)
            families = []
        ok.add_metric([], 1 if families else 0)
        yield ok
        yield from families
        yield from self._from_process()

    def _from_database(self) -> Iterator[Metric]:
        with Session(self.engine) as session:
            yield _labelled(
                GaugeMetricFamily("mailroom_submissions", "Reports by state", labels=["state"]),
                {(s,): n for s, n in overview.submissions_by_state(session).items()},
            )
            yield _labelled(
                GaugeMetricFamily("mailroom_notices", "Our own notices by state", labels=["state"]),
                {(s,): n for s, n in overview.notices_by_state(session).items()},
            )
            yield _labelled(
                GaugeMetricFamily(
                    "mailroom_inbound_messages",
                    "Inbound messages by kind and state",
                    labels=["kind", "state"],
                ),
                overview.inbound_by_kind_and_state(session),
            )
            clocks = overview.clocks_by_kind_and_state(session)
            yield _labelled(
                GaugeMetricFamily("mailroom_clocks", "Clocks by kind and state", labels=["kind", "state"]),
                clocks,
            )
            breaches = GaugeMetricFamily("mailroom_clock_breaches", "Clocks breached and not yet closed")
            breaches.add_metric([], sum(n for (_, state), n in clocks.items() if state in overview.BREACHED))
            yield breaches
            review = GaugeMetricFamily("mailroom_review_waiting", "Inbound messages waiting for a person")
            review.add_metric([], overview.count_waiting_for_review(session))
            yield review
            yield _labelled(
                CounterMetricFamily(
                    "mailroom_escalations", "Reminders and escalations fired, ever", labels=["kind"]
                ),
                {(k,): n for k, n in overview.escalations_by_kind(session).items()},
            )
            sent = overview.last_sent(session)
            instances = overview.recent_instances(session)
        last = GaugeMetricFamily(
            "mailroom_last_send_timestamp_seconds", "When the relay last accepted a message of ours"
        )
        if sent is not None:
            last.add_metric([], sent.timestamp())
        yield last
        running = GaugeMetricFamily("mailroom_daemons_running", "Daemons running, as `mailroom status` says")
        wall = self.wall()
        running.add_metric([], sum(seen(i, wall, self.settings).running for i in instances))
        yield running

    def _from_process(self) -> Iterator[Metric]:
        sends = CounterMetricFamily(
            "mailroom_smtp_sends",
            "SMTP attempts by this process, by result and SMTP reply class",
            labels=["result", "smtp_class"],
        )
        for (result, smtp_class), n in sorted(send_counts().items()):
            sends.add_metric([result, smtp_class], n)
        yield sends
        contact = GaugeMetricFamily(
            "mailroom_last_contact_timestamp_seconds",
            "When this process last reached the SMTP relay or the IMAP server",
            labels=["channel"],
        )
        outage = GaugeMetricFamily(
            "mailroom_outage", "1 while a channel is unavailable to this process", labels=["channel"]
        )
        out = {o.channel for o in current_outages()}
        for channel in ("smtp", "imap"):
            when = last_contact(channel)
            if when is not None:
                contact.add_metric([channel], when.timestamp())
            outage.add_metric([channel], 1 if channel in out else 0)
        for channel in sorted(out - {"smtp", "imap"}):
            outage.add_metric([channel], 1)
        yield contact
        yield outage


def _labelled(family: Metric, values: Mapping[Labels, int]) -> Metric:
    for labels, n in sorted(values.items()):
        family.add_metric(list(labels), n)
    return family


class Metrics:
    """The daemon's metrics outputs, started once; `write_textfile` runs with every heartbeat."""

    def __init__(self, engine: sa.Engine, settings: Settings, wall: Callable[[], datetime]) -> None:
        self.settings = settings
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(MailroomCollector(engine, settings, wall))
        self._server: WSGIServer | None = None

    def start(self) -> None:
        listen = self.settings.metrics.listen
        if not listen:
            return
        host, port = listen_address(listen)
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        log.info("metrics served on http://%s/metrics", listen)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def write_textfile(self) -> None:
        path = self.settings.metrics.textfile
        if path is None:
            return
        try:
            _write_atomically(path, generate_latest(self.registry))
        except OSError as exc:
            log.warning("metrics textfile %s not written: %s", path, exc.strerror)


def _write_atomically(path: Path, data: bytes) -> None:
    # 0640, not 0600: node_exporter reads it under its own user (add it to the mailroom group). It holds
    # counts and states only.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        temporary.chmod(0o640)  # whatever the umask
        temporary.replace(path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise
