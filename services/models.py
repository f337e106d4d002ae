"""Loads every context: all tables on the metadata (migrations, tests), and the
observers one context keeps on another's changes (the SLA clocks and routing's
assignments on task history; the workforce's grants on principals).
Every process (api, worker, beat, cli) imports it."""

import services.billing.ledger
import services.billing.models
import services.identity.models
import services.metering.models
import services.notify.models
import services.routing.assignments
import services.routing.models
import services.routing.offers
import services.sla.clocks
import services.sla.models
import services.work.models
import services.workforce.engagements
import services.workforce.models  # noqa: F401
import tenants.models  # noqa: F401
