"""Typed settings, read once from ``BPO_*`` environment variables.

With no variable set at all the platform runs on its embedded default: SQLite
for the data and for the Celery broker, both under ``./var/``.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BPO_", extra="ignore")

    data_dir: Path = Field(default=Path("var"), description="Where the embedded default keeps its files.")
    database_url: str | None = Field(
        default=None, description="Application connection (a role without table ownership on PostgreSQL)."
    )
    migration_database_url: str | None = Field(
        default=None,
        description="Connection that owns the tables and runs migrations; defaults to database_url.",
    )
    database_pool_size: int = Field(
        default=10,
        ge=1,
        description="PostgreSQL connections a process keeps open: at least the requests it serves at once.",
    )
    database_max_overflow: int = Field(
        default=10, ge=0, description="More connections opened for a burst, each closed after its use."
    )
    broker_url: str | None = Field(
        default=None, description="Celery broker; defaults to SQLite under data_dir."
    )
    secret_key: str | None = Field(default=None, description="Signs sessions and CSRF tokens.")
    max_body_bytes: int = 10 * 1024 * 1024
    access_token_ttl_seconds: int = 3600
    token_cache_seconds: int = Field(
        default=10,
        ge=0,
        description="How long a process may answer a resolved bearer token or web session from memory "
        "(0: never). Another process accepts a revoked token or a signed-out session for at most this long.",
    )
    session_ttl_seconds: int = 12 * 3600
    login_max_failures: int = 5
    login_window_seconds: int = 900
    log_json: bool = False
    presence_ttl_seconds: int = Field(
        default=90, ge=10, description="An agent whose heartbeats stop is offline this long after the last."
    )
    usage_future_tolerance_seconds: int = Field(
        default=300, ge=0, description="How far ahead of the server's clock a usage event may be dated."
    )
    invoice_grace_hours: int = Field(
        default=48, ge=0, description="A closed period's draft takes late usage this long, then is finalised."
    )
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=24 * 3600, description="At least a day.")
    blob_store_url: str = Field(
        default="", description='Attachments and bulk files: "" for data_dir, or s3://bucket?endpoint_url=...'
    )
    attachment_max_bytes: int = Field(
        default=25 * 1024 * 1024, description="Per file, unless the tenant has a limit."
    )
    bulk_max_bytes: int = 512 * 1024 * 1024
    bulk_max_rows: int = 1_000_000
    bulk_sync_max_bytes: int = Field(default=1024 * 1024, description="Larger files become an import job.")
    webhook_max_attempts: int = Field(default=10, ge=1, description="Then the delivery is dead-lettered.")
    webhook_backoff_seconds: float = Field(
        default=15.0, gt=0, description="First retry delay; doubles per try."
    )
    webhook_backoff_max_seconds: float = 6 * 3600
    webhook_timeout_seconds: float = 10.0
    webhook_allow_private_networks: bool = Field(
        default=False, description="Let webhooks reach loopback and private addresses (development only)."
    )
    stripe_api_key: str = Field(default="", description="Stripe secret key; empty: invoices are not synced.")
    stripe_api_base: str = Field(
        default="", description='Stripe API address: "" for Stripe itself, or a localstripe URL.'
    )
    stripe_webhook_secret: str = Field(
        default="", description="Verifies the Stripe-Signature of POST /stripe/webhooks (whsec_...)."
    )

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "bpo.sqlite"

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path.resolve()}"

    def resolved_migration_url(self) -> str:
        return self.migration_database_url or self.resolved_database_url()

    def resolved_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{(self.data_dir / 'broker.sqlite').resolve()}"

    def resolved_secret_key(self) -> str:
        """The configured key, else one generated once and kept under data_dir.

        A key generated per process would log everybody out at each restart and
        make the api and worker disagree, so the embedded default persists it.
        """
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
