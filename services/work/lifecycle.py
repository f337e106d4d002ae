"""The task lifecycle: every allowed transition, and who may take it, in one table.

Public actions are the ones clients and agents send to
``POST /v1/tasks/{id}/transitions``; system actions are taken by intake and
routing (enqueue, offer, assign...). Operators may take any action on behalf
of either side.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from services.work.models import TaskStatus as S


class Side(enum.StrEnum):
    CLIENT = "client"
    PROVIDER = "provider"
    OPERATOR = "operator"
    SYSTEM = "system"


class Action(enum.StrEnum):
    # public
    START = "start"
    ASK_CLIENT = "ask_client"
    CLIENT_REPLIED = "client_replied"
    AWAIT_THIRD_PARTY = "await_third_party"
    THIRD_PARTY_REPLIED = "third_party_replied"
    RESOLVE = "resolve"
    CLOSE = "close"
    CANCEL = "cancel"
    ESCALATE = "escalate"
    REOPEN = "reopen"
    # system: intake and routing
    ENQUEUE = "enqueue"
    OFFER = "offer"
    ACCEPT = "accept"
    DECLINE = "decline"
    ASSIGN = "assign"
    RELEASE = "release"


PUBLIC_ACTIONS = frozenset(
    {
        Action.START,
        Action.ASK_CLIENT,
        Action.CLIENT_REPLIED,
        Action.AWAIT_THIRD_PARTY,
        Action.THIRD_PARTY_REPLIED,
        Action.RESOLVE,
        Action.CLOSE,
        Action.CANCEL,
        Action.ESCALATE,
        Action.REOPEN,
    }
)

_OPEN = (
    S.QUEUED,
    S.OFFERED,
    S.ASSIGNED,
    S.IN_PROGRESS,
    S.WAITING_ON_CLIENT,
    S.WAITING_ON_THIRD_PARTY,
    S.REOPENED,
)


@dataclass(frozen=True)
class Rule:
    action: Action
    sources: tuple[S, ...]
    target: S
    sides: frozenset[Side]


def _rule(action: Action, sources: tuple[S, ...], target: S, *sides: Side) -> Rule:
    return Rule(action, sources, target, frozenset(sides))


C, P, SYS = Side.CLIENT, Side.PROVIDER, Side.SYSTEM

RULES: tuple[Rule, ...] = (
    _rule(Action.ENQUEUE, (S.NEW, S.REOPENED, S.ESCALATED), S.QUEUED, SYS),
    _rule(Action.OFFER, (S.QUEUED,), S.OFFERED, SYS),
    _rule(Action.ACCEPT, (S.OFFERED,), S.ASSIGNED, P, SYS),
    _rule(Action.DECLINE, (S.OFFERED,), S.QUEUED, P, SYS),
    _rule(Action.ASSIGN, (S.QUEUED, S.REOPENED, S.ESCALATED), S.ASSIGNED, SYS),
    _rule(Action.RELEASE, (S.ASSIGNED,), S.QUEUED, P, SYS),
    _rule(Action.START, (S.ASSIGNED, S.REOPENED, S.ESCALATED), S.IN_PROGRESS, P),
    _rule(Action.ASK_CLIENT, (S.IN_PROGRESS,), S.WAITING_ON_CLIENT, P),
    _rule(Action.CLIENT_REPLIED, (S.WAITING_ON_CLIENT,), S.IN_PROGRESS, C),
    _rule(Action.AWAIT_THIRD_PARTY, (S.IN_PROGRESS,), S.WAITING_ON_THIRD_PARTY, P),
    _rule(Action.THIRD_PARTY_REPLIED, (S.WAITING_ON_THIRD_PARTY,), S.IN_PROGRESS, P),
    _rule(Action.RESOLVE, (S.IN_PROGRESS, S.ESCALATED), S.RESOLVED, P),
    _rule(Action.CLOSE, (S.RESOLVED,), S.CLOSED, C, SYS),
    _rule(Action.REOPEN, (S.RESOLVED,), S.REOPENED, C),
    _rule(Action.ESCALATE, _OPEN, S.ESCALATED, C, P),
    _rule(Action.CANCEL, (S.NEW, *_OPEN, S.ESCALATED), S.CANCELLED, C),
)

_BY_ACTION_AND_SOURCE: dict[tuple[Action, S], Rule] = {
    (rule.action, source): rule for rule in RULES for source in rule.sources
}
FINAL_STATES = frozenset({S.CLOSED, S.CANCELLED})


class IllegalTransition(Exception):
    def __init__(self, current: S, action: Action, allowed: list[Action]) -> None:
        super().__init__(f"{action.value} is not allowed from {current.value}")
        self.current = current
        self.action = action
        self.allowed = allowed


class NotYourAction(Exception):
    """The action exists from this state but belongs to the other side."""


def allowed_actions(current: S, side: Side, *, public_only: bool = True) -> list[Action]:
    """What ``side`` may do from ``current``, in a stable order."""
    return [
        rule.action
        for rule in RULES
        if current in rule.sources
        and (not public_only or rule.action in PUBLIC_ACTIONS)
        and (side in rule.sides or side is Side.OPERATOR)
    ]


def target_of(current: S, action: Action, side: Side) -> S:
    """The state ``action`` leads to, or why it may not be taken."""
    rule = _BY_ACTION_AND_SOURCE.get((action, current))
    if rule is None:
        public = side is not Side.SYSTEM
        raise IllegalTransition(current, action, allowed_actions(current, side, public_only=public))
    if side not in rule.sides and side is not Side.OPERATOR:
        raise NotYourAction(f"{action.value} is taken by the {' or '.join(sorted(rule.sides))} side")
    return rule.target
