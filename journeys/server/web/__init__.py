"""The web pages for service managers: static HTML, CSS and JavaScript, no build step.

The pages never embed data: their scripts call the JSON API (`/v1/…`) with the bearer token
the user signed in with. `add_pages` registers them on the API's aiohttp application.
"""

from __future__ import annotations

from journeys.server.web.pages import add_pages, static_dir

__all__ = ["add_pages", "static_dir"]
