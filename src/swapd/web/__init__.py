"""The operator console in the browser: server-rendered pages (Jinja2) over the read models and
use cases, with live updates by server-sent events. Mounted at ``/`` by ``swapd serve``; the HTTP
API stays under ``/api/v1``. Scripts and styles are files of this package (``static/``): the
security headers allow no inline script and nothing from another origin."""
