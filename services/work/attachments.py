"""Attachments of a task: stored as blobs, typed from their content, listed in its history."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.errors import NotFound, UnsupportedMediaType
from services.notify.outbox import emit
from services.work import sniffing
from services.work.history import Actor, record
from services.work.models import Attachment, Queue
from services.work.schemas import AttachmentOut
from services.work.service import get_task
from services.work.storage import BlobStore
from tenants.models import Organization
from tenants.principal import Permission, Principal
from tenants.scoping import acting_for_tenant, fetch

_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')


def clean_filename(name: str | None) -> str:
    """A display name safe in a Content-Disposition and on any file system."""
    base = unicodedata.normalize("NFC", (name or "").replace("\\", "/").rsplit("/", 1)[-1])
    base = _UNSAFE.sub("_", base).strip(" .")
    return base[:255] or "attachment"


def limit_for(session: Session, tenant_id: uuid.UUID, platform_limit: int) -> int:
    """The client's own limit holds whoever attaches (an engaged provider reads no row of
    the client's organisation: the limit is read for it, and only the number comes back)."""
    with acting_for_tenant(session, tenant_id):
        organization = fetch(session, Organization, tenant_id)
        tenant_limit = organization.attachment_max_bytes if organization is not None else None
    return min(platform_limit, tenant_limit) if tenant_limit else platform_limit


def add(
    session: Session,
    principal: Principal,
    task_id: uuid.UUID,
    filename: str | None,
    chunks: Iterable[bytes],
    store: BlobStore,
    platform_limit: int,
) -> Attachment:
    principal.require(Permission.TASKS_WRITE)
    task = get_task(session, principal, task_id, for_change=True)
    attachment_id = uuid.uuid4()
    key = f"{task.tenant_id}/{task.id}/{attachment_id}"
    name = clean_filename(filename)
    blob = store.put(key, chunks, limit_for(session, task.tenant_id, platform_limit))
    content_type = sniffing.sniff(blob.head, name)
    queue = fetch(session, Queue, task.queue_id)
    accepted = (queue.accepted_attachment_types if queue else None) or sniffing.DEFAULT_ACCEPTED_TYPES
    if not sniffing.accepts(accepted, content_type):
        store.delete(key)
        raise UnsupportedMediaType(
            f"{name} is {content_type}, which this queue does not accept",
            extra={"content_type": content_type, "accepted": sorted(accepted)},
        )
    attachment = Attachment(
        id=attachment_id,
        tenant_id=task.tenant_id,
        task_id=task.id,
        filename=name,
        content_type=content_type,
        size=blob.size,
        sha256=blob.sha256,
        storage_key=key,
        uploaded_by=principal.subject_id,
    )
    session.add(attachment)
    session.flush()
    record(session, task, Actor.of(principal), "attached", changes={"attachment_id": str(attachment.id)})
    document = AttachmentOut.model_validate(attachment).model_dump(mode="json")
    emit(
        session,
        task.tenant_id,
        "task.attachment_added",
        task.id,
        {"task_id": str(task.id), "attachment": document},
    )
    return attachment


def list_for_task(session: Session, principal: Principal, task_id: uuid.UUID) -> Sequence[Attachment]:
    task = get_task(session, principal, task_id)
    return session.scalars(
        select(Attachment).where(Attachment.task_id == task.id).order_by(Attachment.id)
    ).all()


def get(session: Session, principal: Principal, task_id: uuid.UUID, attachment_id: uuid.UUID) -> Attachment:
    task = get_task(session, principal, task_id)
    attachment = fetch(session, Attachment, attachment_id)
    if attachment is None or attachment.task_id != task.id:
        raise NotFound("no such attachment")
    return attachment


def download_headers(attachment: Attachment) -> dict[str, str]:
    """Always a download, never rendered by the browser, whatever the file claims to be."""
    ascii_name = attachment.filename.encode("ascii", "replace").decode().replace('"', "_")
    utf8_name = quote(attachment.filename, safe="")
    return {
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{utf8_name}",
        "Content-Length": str(attachment.size),
        "X-Content-Type-Options": "nosniff",
        "ETag": f'"{attachment.sha256}"',
    }
