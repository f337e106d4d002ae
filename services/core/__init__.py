"""Shared foundations: settings, database, ids, errors, i18n, time."""
