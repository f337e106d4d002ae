"""Request and answer shapes of the routing API."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict


class AssignmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: uuid.UUID
