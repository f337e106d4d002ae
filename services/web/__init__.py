"""Server-rendered pages for every persona: Jinja2 templates, htmx, no build step."""
