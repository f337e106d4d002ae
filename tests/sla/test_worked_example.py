"""The worked example of docs/sla.md, computed by hand: a resolution clock across the
Paris spring-forward weekend of 2027 (Easter Sunday), Easter Monday, and a client pause.

Calendar (Europe/Paris): Monday to Friday 09:00-12:00 and 13:30-18:00, an overnight
shift Saturday 22:00 to Sunday 06:00, French public holidays. Target: 16 business hours.

- Fri 26 March 16:00 CET: the task arrives; 16:00-18:00 counts 2 h.             (2 h)
- Sat 27 22:00 CET to Sun 28 01:00 CET: 3 h.                                   (5 h)
- Sun 28 01:00 CET: the agent asks the client; the clock pauses. Clocks jump
  from 02:00 CET to 03:00 CEST that night.
- Sun 28 05:00 CEST: the client replies (3 real hours later); 05:00-06:00: 1 h. (6 h)
- Mon 29 March: Easter Monday, a public holiday: closed.
- Tue 30: 09:00-12:00 and 13:30-18:00 count 7 h 30.                           (13 h 30)
- Wed 31: the last 2 h 30 run 09:00-11:30 CEST.                               (16 h)

Due: Wednesday 31 March 2027 at 11:30 CEST, 09:30 UTC. Paused: 3 h waiting on the client.
"""

from __future__ import annotations

from datetime import UTC, datetime

from services.core.database import Database
from services.core.ids import new_id
from services.core.time import utcnow
from services.sla import policies
from services.sla.clocks import Clockwork
from services.sla.models import ClockState, Metric, PauseCause, SlaClock
from services.work.models import Priority
from tenants.principal import OrgKind
from tenants.scoping import AccessScope, bind
from tests.factories import make_calendar, make_org, make_policy, make_queue, make_task

PARIS_WITH_SATURDAY_NIGHT = {
    "timezone": "Europe/Paris",
    "weekly": {
        **{d: [["09:00", "12:00"], ["13:30", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
        "sat": [["22:00", "06:00"]],
    },
    "holidays": {"country": "FR", "subdivision": None},
}


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_the_worked_example_gives_the_due_time_computed_by_hand(db: Database) -> None:
    client = make_org(db, OrgKind.CLIENT)
    task = make_task(db, make_queue(db, client))  # before the policy: it starts no clock itself
    make_calendar(db, client, PARIS_WITH_SATURDAY_NIGHT, name="Service Paris")
    make_policy(db, client, calendar="Service Paris", targets=[{"metric": "resolution", "minutes": 16 * 60}])
    with db.session() as session:
        bind(session, AccessScope.everything())
        terms = policies.terms_in_force(session, client.id, utcnow())
        assert terms is not None
        target = terms.targets[0]
        assert target.calendar_id is not None
        calendar_version = policies.calendar_version_in_force(session, target.calendar_id, utcnow())
        assert calendar_version is not None
        clock = SlaClock(
            id=new_id(),
            tenant_id=client.id,
            task_id=task.id,
            queue_id=task.queue_id,
            metric=Metric.RESOLUTION,
            cycle=0,
            priority=Priority.NORMAL,
            policy_version_id=terms.version_id,
            calendar_version_id=calendar_version.id,
            target_seconds=target.seconds,
            warn_seconds=terms.warn_seconds(target.seconds),
            state=ClockState.RUNNING,
            started_at=utc(2027, 3, 26, 15, 0),  # Friday 16:00 CET
            running_since=utc(2027, 3, 26, 15, 0),
            elapsed_seconds=0,
            paused_client_seconds=0,
            paused_third_party_seconds=0,
        )
        session.add(clock)
        work = Clockwork(session, clock)
        work.start()
        assert clock.due_at == utc(2027, 3, 30, 15, 30)  # were there no pause: Tuesday 17:30 CEST
        work.pause(utc(2027, 3, 28, 0, 0), PauseCause.WAITING_ON_CLIENT)  # Sunday 01:00 CET
        assert clock.elapsed_seconds == 5 * 3600
        work.resume(utc(2027, 3, 28, 3, 0))  # Sunday 05:00 CEST
        assert clock.paused_client_seconds == 3 * 3600
        assert clock.due_at == utc(2027, 3, 31, 9, 30)  # Wednesday 11:30 CEST
        work.stop(utc(2027, 3, 31, 9, 0), "resolved")  # half an hour early
        assert clock.outcome is not None and clock.outcome.value == "met"
        assert clock.elapsed_seconds == 16 * 3600 - 1800
