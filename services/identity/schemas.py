"""Request and answer shapes of the identity API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class MeOut(BaseModel):
    id: uuid.UUID
    kind: str = Field(description="user or api_client")
    display_name: str
    organization_id: uuid.UUID
    organization_kind: str
    roles: list[str]
    scopes: list[str]
    tenant_ids: list[uuid.UUID] | None = Field(description="Tenants visible; null means all")
    locale: str


class ApiClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] | None = Field(default=None, description="Defaults to every scope")


class ApiClientOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    client_id: str
    name: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None


class ApiClientCreated(ApiClientOut):
    client_secret: str = Field(description="Shown once; store it now")
