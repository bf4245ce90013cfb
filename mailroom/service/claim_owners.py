"""Whose claim is this, and is its owner still alive? Claims of a daemon that is gone go back at once.

A claim (a submission or notice in `sending`) records the daemon instance holding it. An owner is gone
when its instance row says it stopped, when it ran on this host and its process no longer exists (same
boot id with the pid gone or reused, or an earlier boot), or, on PostgreSQL from any host, when the
session advisory lock it holds on its own id is free. A hung but living owner keeps its claims until the
lease runs out: that timeout stays the last resort. Claims with no owner (made before claims had one, or
whose instance row was pruned) wait for their lease too.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Session, col, select

from mailroom.edges.leader import instance_lock_free
from mailroom.edges.process import ProcessIdentity, is_alive
from mailroom.store.models import DaemonInstance


def gone_owners(session: Session, owners: Iterable[str], *, me: str) -> dict[str, DaemonInstance]:
    """Of these instance ids (never `me`), the ones whose daemon is gone, with their rows."""
    wanted = {o for o in owners if o and o != me}
    if not wanted:
        return {}
    rows = session.exec(select(DaemonInstance).where(col(DaemonInstance.id).in_(wanted))).all()
    postgres = session.get_bind().dialect.name == "postgresql"
    return {row.id: row for row in rows if _gone(session, row, postgres=postgres)}


def _gone(session: Session, row: DaemonInstance, *, postgres: bool) -> bool:
    if row.stopped_at is not None:
        return True
    alive = is_alive(ProcessIdentity(row.id, row.host, row.boot_id, row.pid, row.process_started))
    if alive is not None:
        return not alive
    return postgres and instance_lock_free(session.connection(), row.id)
