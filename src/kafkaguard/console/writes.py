"""The console's state-changing routes: login, logout, retry, discard, redrive, edit-and-retry.

Every action route authorises first (:meth:`kafkaguard.console.auth.Guard.authorise`: operator
token and CSRF token), then resolves its records (``id`` fields, or ``scope=group`` with the
filters of a failure group), runs the action, and writes one audit row whatever came of it.
A refused write changes no record (it is audited as ``refused``).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from kafkaguard.console import actions, audit, queries
from kafkaguard.console.auth import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, Operator, Refusal, clean_name
from kafkaguard.console.context import Console
from kafkaguard.console.edit import edit_and_retry
from kafkaguard.console.forms import FormError, first, ids_of, parse_form, query_of
from kafkaguard.console.jobs import Job
from kafkaguard.errors import KafkaguardError

log = logging.getLogger("kafkaguard.console")
MAX_BULK = 10_000  # records one group action takes; a larger group is acted on in several runs


async def form_fields(request: Request) -> dict[str, list[str]]:
    """The request's URL-encoded form (read here: no multipart dependency)."""
    try:
        return parse_form(await request.body())
    except FormError:
        return {}


Fields = Annotated[dict[str, list[str]], Depends(form_fields)]


def _remote(request: Request) -> str | None:
    return request.client.host if request.client else None


def router(console: Console) -> APIRouter:
    """The POST routes of ``console``."""
    r = APIRouter()

    @r.get("/login", response_class=HTMLResponse)
    def login_page(request: Request) -> HTMLResponse:
        return console.render(request, "login.html")

    @r.post("/login", response_model=None)
    def login(request: Request, fields: Fields) -> Response:
        name = clean_name(first(fields, "operator") or "operator")
        if not console.guard.token_matches(first(fields, "token")):
            audit.write(console.engine, audit.Entry(name, _remote(request), "login", None, "refused"))
            return console.render(request, "login.html", 401, error="wrong operator token (or none is configured)")
        response = RedirectResponse("/", status_code=303)
        secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
        session = console.guard.new_session(name)
        response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="strict", secure=secure)
        return response

    @r.post("/logout")
    def logout() -> RedirectResponse:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @r.get("/api/csrf")
    def api_csrf(request: Request) -> JSONResponse:
        """The CSRF token of header clients (``Authorization: Bearer <operator token>``)."""
        auth = request.headers.get("authorization") or ""
        if not (auth.lower().startswith("bearer ") and console.guard.token_matches(auth[7:].strip())):
            return JSONResponse({"error": "an operator token is needed"}, status_code=401)
        return JSONResponse({"csrf": console.guard.csrf_token(Operator("api", "bearer"))})

    def authorise(request: Request, fields: dict[str, list[str]]) -> Operator | Refusal:
        return console.guard.authorise(
            cookie=request.cookies.get(SESSION_COOKIE),
            authorization=request.headers.get("authorization"),
            csrf=first(fields, CSRF_FIELD) or request.headers.get(CSRF_HEADER),
            actor=request.headers.get("x-operator"),
        )

    def targets(fields: dict[str, list[str]]) -> tuple[queries.Query, list[int]]:
        query = query_of(fields)
        if first(fields, "scope") == "group":
            if query.group is None:
                raise FormError("a group action needs the group's id")
            with console.engine.connect() as conn:
                return query, queries.group_ids(conn, query, limit=MAX_BULK)
        return query, ids_of(fields)

    def act(action: str, request: Request, fields: dict[str, list[str]]) -> Response:
        who = authorise(request, fields)
        store = first(fields, "store")
        if isinstance(who, Refusal):
            audit.write(console.engine, audit.Entry("anonymous", _remote(request), action, store, "refused",
                                                    reason=who.reason))  # fmt: skip
            return console.render(request, "message.html", who.status, title="Refused", message=who.reason)
        reason = first(fields, "reason")
        if action == "edit" and not console.settings.console.edit_and_retry:
            message = "edit-and-retry is off (console.edit_and_retry = false): nothing was changed"
            audit.write(console.engine, audit.Entry(who.name, _remote(request), action, store, "refused",
                                                    reason=message))  # fmt: skip
            return console.render(request, "message.html", 403, title="Refused", message=message)
        try:
            query, ids = targets(fields)
            if action in ("retry", "redrive"):
                return start_job(action, request, query, ids, who)
            result = run(action, query, ids, who, reason, fields)
        except (FormError, KafkaguardError) as exc:
            # Our errors say what happened and never carry the token; a third-party one is logged, not shown.
            audit.write(console.engine, audit.Entry(who.name, _remote(request), action, store, "refused",
                                                    reason=str(exc)[:2000]))  # fmt: skip
            return console.render(request, "message.html", 409, title="Not done", message=str(exc))
        detail: dict[str, Any] = {"ids": result.ids, "message": result.message}
        if query.group:
            detail["group"] = query.group
        audit.write(console.engine, audit.Entry(who.name, _remote(request), action, query.store.value, "done",
                                                result.requested, result.changed, reason, detail))  # fmt: skip
        return console.render(request, "message.html", title="Done", message=result.message, back=query.params())

    def run(
        action: str, query: queries.Query, ids: list[int], who: Operator, reason: str | None,
        fields: dict[str, list[str]],
    ) -> actions.Result:  # fmt: skip
        by = f"console:{who.name}"
        settings, engine, store = console.settings, console.engine, query.store
        if action == "discard":
            return actions.discard_records(engine, store, ids, by=by, reason=reason or "")
        if len(ids) != 1:
            raise FormError("edit-and-retry takes one record")
        return edit_and_retry(
            settings, engine, store, ids[0], first(fields, "payload") or "", by=by, registry=console.registry
        )

    def start_job(
        action: str, request: Request, query: queries.Query, ids: list[int], who: Operator
    ) -> RedirectResponse:
        """Check the retry now (a refusal raises, nothing changed), then run it as a job and show its page."""
        by, remote = f"console:{who.name}", _remote(request)
        plan = actions.plan_retry(
            console.settings, console.engine, query.store, ids, by=by,
            registry=console.registry if action == "retry" else None, republish=action == "redrive",
        )  # fmt: skip

        def audited(job: Job) -> None:
            result = job.result
            outcome = "failed" if result is None else ("cancelled" if result.cancelled else "done")
            detail: dict[str, Any] = {"job": job.id, "ids": result.ids if result else ids}
            detail["message"] = result.message if result else job.error
            if query.group:
                detail["group"] = query.group
            changed = result.changed if result else 0
            audit.write(console.engine, audit.Entry(who.name, remote, action, query.store.value, outcome,
                                                    plan.requested, changed, None, detail))  # fmt: skip

        job = console.jobs.start(action, who.name, plan, audited)
        return RedirectResponse(f"/jobs/{job.id}", status_code=303)

    @r.get("/jobs/{job_id}", response_class=HTMLResponse)
    def job_page(request: Request, job_id: str) -> HTMLResponse:
        job = console.jobs.get(job_id)
        if job is None:
            return console.render(request, "message.html", 404, title="Not found", message=f"no job {job_id[:20]}")
        return console.render(request, "job.html", job=job, finished=job.finished.is_set())

    @r.post("/jobs/{job_id}/cancel", response_model=None)
    def cancel(request: Request, job_id: str, fields: Fields) -> Response:
        who = authorise(request, fields)
        job = console.jobs.get(job_id)
        if isinstance(who, Refusal):
            return console.render(request, "message.html", who.status, title="Refused", message=who.reason)
        if job is None:
            return console.render(request, "message.html", 404, title="Not found", message=f"no job {job_id[:20]}")
        job.progress.cancel.set()
        return RedirectResponse(f"/jobs/{job.id}", status_code=303)

    for name in ("retry", "redrive", "discard", "edit"):

        def endpoint(request: Request, fields: Fields, _action: str = name) -> Response:
            return act(_action, request, fields)

        r.add_api_route(f"/actions/{name}", endpoint, methods=["POST"], response_model=None)

    return r
