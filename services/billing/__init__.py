"""Billing: rating usage against contracts, SLA credits, tax and invoices."""
