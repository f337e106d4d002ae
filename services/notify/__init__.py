"""Notifications: the transactional outbox and the signed webhooks it feeds."""
