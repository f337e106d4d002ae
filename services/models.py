"""Loads every context: all tables on the metadata (migrations, tests), and the
observers one context keeps on another's changes (the SLA clocks on task history).
Every process (api, worker, beat, cli) imports it."""

import tenants.models  # noqa: F401
