"""Request and answer shapes of the workforce API: teams, agents, presence, engagements."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.work.proficiency import LanguageLevel
from services.workforce.models import EngagementRank, Presence


class SpokenLanguage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=2, max_length=16, description="BCP 47 language tag")
    level: LanguageLevel = Field(description="CEFR A1-C2, or native")


class SkillLevel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    level: int = Field(ge=1, le=5)


class Money(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int = Field(ge=0, le=10**15, description="minor units (cents)")
    currency: str = Field(min_length=3, max_length=3, description="ISO 4217")


class TeamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    country: str = Field(min_length=2, max_length=2, description="where the team works: residency")
    timezone: str
    calendar: dict[str, Any] = Field(description="staffed hours, as an SLA calendar spec")
    languages: list[SpokenLanguage] = Field(default_factory=list)
    skills: list[SkillLevel] = Field(default_factory=list)
    hourly_cost: Money
    provider_id: uuid.UUID | None = Field(default=None, description="operator callers: the provider")


class TeamUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = None
    calendar: dict[str, Any] | None = None
    languages: list[SpokenLanguage] | None = None
    skills: list[SkillLevel] | None = None
    hourly_cost: Money | None = None


class TeamOut(BaseModel):
    id: uuid.UUID
    provider_id: uuid.UUID
    name: str
    country: str
    timezone: str
    calendar: dict[str, Any]
    languages: list[SpokenLanguage]
    skills: list[SkillLevel]
    hourly_cost: Money
    created_at: datetime


# The name clients read on what an agent writes and does, if the provider shows one.
PublicName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
_PUBLIC_NAME = "the name clients read on the agent's comments and steps (a first name, an alias)"


class AgentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: uuid.UUID
    team_id: uuid.UUID
    languages: list[SpokenLanguage] | None = Field(default=None, description="None: the team's")
    skills: list[SkillLevel] | None = Field(default=None, description="None: the team's")
    calendar: dict[str, Any] | None = Field(default=None, description="their own shift; None: the team's")
    capacity: dict[str, int] = Field(
        default_factory=dict, description='open tasks at once per task kind ("*": any other kind; default 1)'
    )
    public_name: PublicName | None = Field(default=None, description=_PUBLIC_NAME)


class AgentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    team_id: uuid.UUID | None = None
    languages: list[SpokenLanguage] | None = None
    skills: list[SkillLevel] | None = None
    calendar: dict[str, Any] | None = None
    capacity: dict[str, int] | None = None
    public_name: PublicName | None = Field(default=None, description=_PUBLIC_NAME + "; null: shown none")


class AgentOut(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    team_id: uuid.UUID
    display_name: str
    languages: list[SpokenLanguage] | None
    skills: list[SkillLevel] | None
    calendar: dict[str, Any] | None
    capacity: dict[str, int]
    presence: Presence
    presence_expires_at: datetime | None
    public_name: str | None


class PresenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    presence: Presence


class EngagementCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue_id: uuid.UUID
    team_id: uuid.UUID
    rank: EngagementRank = EngagementRank.PRIMARY
    share: int | None = Field(default=None, ge=1, le=100, description="weight among the tenants of a team")


class EngagementOut(BaseModel):
    id: uuid.UUID
    queue_id: uuid.UUID
    team_id: uuid.UUID
    provider_id: uuid.UUID
    rank: EngagementRank
    share: int | None
    created_at: datetime
    revoked_at: datetime | None
