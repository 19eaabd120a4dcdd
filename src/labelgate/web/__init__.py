"""The pages: login, queue, editor, review, adjudication and dashboards (see ``docs/web.md``).

``mount(app)`` adds the HTML routes, the static JavaScript and the web-only read endpoints
to an API app built by :func:`labelgate.api.create_app`; this package never imports the API
at module level, so the API may call ``mount`` itself.
"""

from labelgate.web.pages import mount

__all__ = ["mount"]
