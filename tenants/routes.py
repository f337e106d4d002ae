"""HTTP of organisations: read the ones the principal may see."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends

from services.core.deps import DbSession
from services.core.pagination import Page, PageRequest, page_request
from services.core.problems import PROBLEM_RESPONSES
from services.core.route_class import UnitOfWorkRoute
from services.identity.deps import CurrentPrincipal
from tenants import service
from tenants.principal import Permission
from tenants.schemas import OrganizationOut

router = APIRouter(
    route_class=UnitOfWorkRoute, prefix="/v1", tags=["organizations"], responses=PROBLEM_RESPONSES
)


@router.get("/organizations", response_model=Page[OrganizationOut], summary="Organisations you may see")
def list_organizations(
    session: DbSession, principal: CurrentPrincipal, page: Annotated[PageRequest, Depends(page_request)]
) -> Page[OrganizationOut]:
    principal.require(Permission.ORG_READ)
    rows, next_cursor = service.list_organizations(session, page)
    return Page(items=[OrganizationOut.model_validate(o) for o in rows], next_cursor=next_cursor)


@router.get("/organizations/{organization_id}", response_model=OrganizationOut, summary="One organisation")
def get_organization(
    organization_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal
) -> OrganizationOut:
    principal.require(Permission.ORG_READ)
    return OrganizationOut.model_validate(service.get_organization(session, organization_id))
