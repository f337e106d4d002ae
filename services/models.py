"""Imports every context's models so that the metadata is complete (migrations, tests)."""

import services.identity.models  # noqa: F401
import tenants.models  # noqa: F401
