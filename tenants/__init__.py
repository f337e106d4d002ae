"""Tenancy: organisations, principals, the one scoping mechanism, onboarding."""
