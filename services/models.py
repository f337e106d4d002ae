"""Loads every context: all tables on the metadata (migrations, tests), and the
observers one context keeps on another's changes (the SLA clocks on task history).
Every process (api, worker, beat, cli) imports it."""

import services.identity.models
import services.notify.models
import services.sla.clocks  # subscribes the clocks to task history
import services.sla.models
import services.work.models  # noqa: F401
import tenants.models  # noqa: F401
