"""Imports every context's models so that the metadata is complete (migrations, tests)."""

import services.identity.models
import services.notify.models
import services.work.models  # noqa: F401
import tenants.models  # noqa: F401
