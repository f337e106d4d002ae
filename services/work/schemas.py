"""Request and answer shapes of the work API (DESIGN.md, contracts)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from services.work.models import CommentVisibility, ImportStatus, Priority, QueueMode, TaskStatus
from services.work.proficiency import LanguageLevel
from tenants.principal import OrgKind, Principal


class Skill(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    min_level: int = Field(default=1, ge=1, le=5)


class Residency(BaseModel):
    allow: list[str] = Field(default_factory=list, description='ISO 3166 countries or regions ("EU", "EEA")')
    deny: list[str] = Field(default_factory=list)


EngagementRankName = Literal["primary", "secondary", "overflow"]


def _every_rank() -> list[EngagementRankName]:
    return ["primary", "secondary", "overflow"]


class RoutingStep(BaseModel):
    """One relaxation step (``services.routing.policy``): who may take a task once it is in force."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    after_seconds: int | None = Field(
        default=None, ge=0, le=30 * 86400, description="in force once the task has waited this long"
    )
    slack_below_seconds: int | None = Field(
        default=None, ge=60, le=30 * 86400, description="or once its SLA time left falls under this"
    )
    ranks: list[EngagementRankName] = Field(default_factory=_every_rank, min_length=1)
    min_skill_level: int = Field(
        default=1, ge=1, le=5, description="the level the queue's skills are asked at (never below its own)"
    )


class ScoringWeights(BaseModel):
    """How much each soft criterion counts when routing chooses among eligible agents."""

    model_config = ConfigDict(extra="forbid")

    rank: float = Field(default=3.0, ge=0, le=100, description="engagement rank: primary before overflow")
    idle: float = Field(default=1.0, ge=0, le=100, description="least recently assigned first")
    load: float = Field(default=1.0, ge=0, le=100, description="least loaded first")
    cost: float = Field(default=0.5, ge=0, le=100, description="cheaper team first")
    sticky: float = Field(default=2.0, ge=0, le=100, description="the agent who already worked the case")


def _default_steps() -> list[RoutingStep]:
    return [RoutingStep(name="default")]


class RoutingPolicy(BaseModel):
    """How routing picks agents for a queue's tasks (``services.routing``)."""

    model_config = ConfigDict(extra="forbid")

    min_language_level: LanguageLevel = Field(
        default=LanguageLevel.B2, description="CEFR level an agent needs in the task's language"
    )
    offer_timeout_seconds: int = Field(default=60, ge=5, le=3600, description="push mode: time to accept")
    steps: list[RoutingStep] = Field(
        default_factory=_default_steps,
        min_length=1,
        max_length=10,
        description="relaxation steps, each wider than the one before; the first is in force at once",
    )
    weights: ScoringWeights = Field(default_factory=ScoringWeights)

    @model_validator(mode="after")
    def _steps_widen(self) -> RoutingPolicy:
        """Each step lets in at least whom the one before did, and comes later: only soft
        requirements relax, and a later step never takes back what an earlier one gave."""
        first = self.steps[0]
        if first.after_seconds or first.slack_below_seconds is not None:
            raise PydanticCustomError("first_step", "the first step is in force at once: give it no trigger")
        if sum(step.slack_below_seconds is not None for step in self.steps) > 1:
            raise PydanticCustomError("one_slack_step", "at most one step is set off by the SLA time left")
        for before, step in zip(self.steps, self.steps[1:], strict=False):
            if step.after_seconds is None and step.slack_below_seconds is None:
                raise PydanticCustomError(
                    "no_trigger", "a later step needs after_seconds or slack_below_seconds"
                )
            if not set(before.ranks) <= set(step.ranks) or step.min_skill_level > before.min_skill_level:
                raise PydanticCustomError(
                    "narrower_step", "each step lets in at least the ranks and levels before it"
                )
        waits = [step.after_seconds for step in self.steps if step.after_seconds is not None]
        if waits != sorted(waits):
            raise PydanticCustomError("earlier_step", "steps come in the order of their after_seconds")
        return self


class QueueCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    task_kind: str
    languages: list[str] = Field(default_factory=list, description="BCP 47 tags the work needs")
    skills: list[Skill] = Field(default_factory=list)
    residency: Residency = Field(default_factory=Residency)
    default_priority: Priority = Priority.NORMAL
    out_of_hours: bool = False
    mode: QueueMode = QueueMode.PULL
    accepted_attachment_types: list[str] = Field(
        default_factory=list, description='MIME types ("application/pdf", "image/*"); empty: the defaults'
    )
    routing: RoutingPolicy = Field(default_factory=RoutingPolicy)


class QueueUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    languages: list[str] | None = None
    skills: list[Skill] | None = None
    residency: Residency | None = None
    default_priority: Priority | None = None
    out_of_hours: bool | None = None
    mode: QueueMode | None = None
    accepted_attachment_types: list[str] | None = None
    routing: RoutingPolicy | None = None


class QueueOut(BaseModel):
    id: uuid.UUID
    name: str
    task_kind: str
    languages: list[str]
    skills: list[Skill]
    residency: Residency
    default_priority: Priority
    out_of_hours: bool
    mode: QueueMode
    accepted_attachment_types: list[str]
    routing: RoutingPolicy
    created_at: datetime
    updated_at: datetime


class TaskKindCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=2, max_length=64)
    json_schema: dict[str, Any] = Field(
        alias="schema", description="JSON Schema draft 2020-12 of the payload"
    )


class TaskKindOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    name: str
    version: int
    builtin: bool
    json_schema: dict[str, Any] = Field(serialization_alias="schema")


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue_id: uuid.UUID
    external_ref: str | None = Field(default=None, min_length=1, max_length=200)
    case_ref: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The case, claim or dossier the task belongs to, shared by its tasks: "
        "routing prefers the agent who worked the case before",
    )
    title: str = Field(min_length=1, max_length=500)
    payload: dict[str, Any] = Field(default_factory=dict)
    priority: Priority | None = None
    language: str | None = Field(default=None, description="BCP 47; detected from the text when absent")


class TaskUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=500)
    payload: dict[str, Any] | None = None
    priority: Priority | None = None
    language: str | None = None
    queue_id: uuid.UUID | None = None


class TaskOut(BaseModel):
    id: uuid.UUID
    queue_id: uuid.UUID
    external_ref: str | None
    case_ref: str | None = None
    title: str
    payload: dict[str, Any]
    task_kind: str
    task_kind_version: int
    priority: Priority
    status: TaskStatus
    language: str | None
    language_confidence: float | None
    revision: int
    created_at: datetime
    updated_at: datetime


class TransitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal[
        "start",
        "ask_client",
        "client_replied",
        "await_third_party",
        "third_party_replied",
        "resolve",
        "close",
        "cancel",
        "escalate",
        "reopen",
    ]
    comment: str | None = Field(default=None, min_length=1, max_length=20_000)


class TaskEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    at: datetime
    kind: str
    actor_kind: str
    actor_id: uuid.UUID | None
    actor_name: str
    actor_side: str | None = None
    action: str | None
    from_status: str | None
    to_status: str | None
    changes: dict[str, Any]
    provider_id: uuid.UUID | None = Field(default=None, exclude=True)
    actor_public_name: str = Field(default="", description="the name clients were shown, if any")

    def seen_by(self, principal: Principal) -> TaskEventOut:
        """A client sees that the provider acted, not who (the provider's people are its own),
        but for the name the provider shows clients, if it chose one; another provider
        engaged on the queue likewise."""
        if self.actor_side != "provider" or _sees_people_of(principal, self.provider_id):
            return self
        return self.model_copy(update={"actor_id": None, "actor_name": self.actor_public_name})


class CommentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=20_000)
    visibility: CommentVisibility = CommentVisibility.CLIENT


class CommentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    body: str
    visibility: CommentVisibility
    author_kind: str
    author_id: uuid.UUID | None
    author_name: str
    author_side: str | None = None
    created_at: datetime
    provider_id: uuid.UUID | None = Field(default=None, exclude=True)
    author_public_name: str = Field(default="", description="the name clients were shown, if any")

    def seen_by(self, principal: Principal | None) -> CommentOut:
        """As ``TaskEventOut.seen_by``; ``None``: the client's webhooks."""
        if self.author_side != "provider" or _sees_people_of(principal, self.provider_id):
            return self
        return self.model_copy(update={"author_id": None, "author_name": self.author_public_name})


def _sees_people_of(principal: Principal | None, provider_id: uuid.UUID | None) -> bool:
    """Whether ``principal`` reads the names of a provider's people: the operator and the
    provider itself do."""
    if principal is None:
        return False
    return principal.org_kind is OrgKind.OPERATOR or principal.org_id == provider_id


class AttachmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    filename: str
    content_type: str
    size: int
    sha256: str
    created_at: datetime


class ImportOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    queue_id: uuid.UUID
    status: ImportStatus
    file_format: str
    all_or_nothing: bool
    size_bytes: int
    rows_done: int
    accepted: int
    rejected: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
