"""Metering: the usage ledger, fed by the outbox and by integrations."""
