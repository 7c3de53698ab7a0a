"""What every console page shares: the templates, the request's language and database, and
rendering a page in that language."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request

from swapd import i18n
from swapd.store.database import Database

HERE = Path(__file__).parent
_templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(("html",)),
    trim_blocks=True,
    lstrip_blocks=True,
)
# Charts take times as Unix seconds.
_templates.filters["timestamp"] = lambda at: int(at.timestamp())


def database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def read_database(request: Request) -> Database:
    """Where a page's reads that may lag go: the read replica when one is configured
    (swapd.store.replica), else the primary. Signing in and the staff check stay on
    ``database``: a session made a moment ago must not be refused by a replica that has not
    replayed it yet. So do the pages an action redirects to (a rider's, a pack's, a station's
    commands), which must show the action done."""
    db: Database = request.app.state.read_db
    return db


def translator(request: Request) -> i18n.Translator:
    language = i18n.negotiate(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))
    return i18n.Translator(language)


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    t = translator(request)
    html = _templates.get_template(name).render(
        _=t.gettext, t=t, lang=t.language, path=request.url.path, **context
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})
