"""Identity: users, API clients, OAuth2 tokens, web sessions, login throttling."""
