"""Server-rendered pages (Jinja2) and plain ES modules — no JS build step."""
