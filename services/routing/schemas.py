"""Request and answer shapes of the routing API."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field


class AssignmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: uuid.UUID


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=64)
