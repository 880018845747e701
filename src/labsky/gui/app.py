"""The cockpit's web app: the page, its JSON API and one WebSocket per page.

Security, as `labsky serve`: on loopback by default; beyond loopback only
with an API key (from the environment). With a key every request needs it
(the page asks once and keeps it in an HttpOnly cookie). Whatever the
interface, a request that changes the lab must carry the header
`X-Labsky-Action` (a page of another site cannot send it without a CORS
preflight, which this app never grants), and on loopback the Host header
must be a loopback name (no DNS rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from labsky.gui.hub import Browser, Cockpit
from labsky.gui.runs import RunBrowser

logger = logging.getLogger(__name__)

COOKIE = "labsky_cockpit_key"
ACTION_HEADER = "x-labsky-action"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header.split("]")[0] + "]"
    return host_header.rsplit(":", 1)[0] if ":" in host_header else host_header


def create_app(
    cockpit: Cockpit,
    browser: RunBrowser,
    *,
    api_key: str | None = None,
    loopback: bool = True,
) -> FastAPI:
    """Build the app around a started-or-not cockpit.

    Args:
        cockpit: The daemon connection (started by the app's lifespan).
        browser: The run browser.
        api_key: Required of every request when set.
        loopback: Bound to loopback: Host headers must be loopback names.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await cockpit.start()
        try:
            allowed = await cockpit.api.plans_allowed()
            cockpit.plans.set_allowed(allowed.get("plans_allowed", {}))
        except Exception as exc:  # noqa: BLE001 - forms without device lists
            cockpit.note("error", f"plans_allowed: {exc}")
        yield
        await cockpit.close()

    app = FastAPI(title="labsky cockpit", lifespan=lifespan, docs_url=None)
    static = resources.files("labsky.gui") / "static"

    def authorised(key: str | None) -> bool:
        return api_key is None or (
            key is not None and hmac.compare_digest(key.encode(), api_key.encode())
        )

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        path = request.url.path
        if loopback and _host_name(request.headers.get("host", "")) not in (
            LOOPBACK_HOSTS
        ):
            return JSONResponse({"error": "unknown host"}, status_code=400)
        if path.startswith("/api/") and path != "/api/login":
            key = request.headers.get("x-api-key") or request.cookies.get(COOKIE)
            if not authorised(key):
                return JSONResponse(
                    {"error": "this cockpit needs its API key"}, status_code=401
                )
            if request.method != "GET" and request.headers.get(ACTION_HEADER) != "1":
                return JSONResponse(
                    {"error": f"actions need the header {ACTION_HEADER}: 1"},
                    status_code=403,
                )
        return await call_next(request)

    @app.get("/")
    async def index() -> Response:
        return Response(
            (static / "index.html").read_bytes(),
            media_type="text/html",
            headers={"Cache-Control": "no-store"},
        )

    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.post("/api/login")
    async def login(request: Request) -> Response:
        body = await request.json()
        if request.headers.get(ACTION_HEADER) != "1":
            return JSONResponse({"error": "missing header"}, status_code=403)
        if not authorised(str(body.get("key", ""))):
            return JSONResponse({"error": "wrong API key"}, status_code=401)
        response = JSONResponse({"ok": True})
        if api_key is not None:
            response.set_cookie(
                COOKIE, api_key, httponly=True, samesite="strict", max_age=30 * 86400
            )
        return response

    @app.get("/api/state")
    async def state() -> Any:
        return JSONResponse(json.loads(json.dumps(cockpit.snapshot(), default=str)))

    # -- devices ----------------------------------------------------------

    async def device_request(op: str, timeout: float = 30, **fields: Any) -> Any:
        if cockpit.device_api is None:
            raise HTTPException(503, "the daemon serves no device API")
        from labsky.daemon.device_client import DeviceRequestError

        try:
            return await cockpit.device_api.request(op, timeout=timeout, **fields)
        except DeviceRequestError as exc:
            raise HTTPException(400, str(exc)) from None
        except TimeoutError:
            raise HTTPException(504, f"{op}: the device API did not answer") from None

    @app.post("/api/devices/set")
    async def device_set(request: Request) -> Any:
        body = await request.json()
        name, value = body.get("name"), body.get("value")
        cockpit.note("info", f"set {name} to {value}", "devices")
        reply = await device_request("set", timeout=600, name=name, value=value)
        return reply

    @app.post("/api/devices/stop")
    async def device_stop(request: Request) -> Any:
        body = await request.json()
        cockpit.note("warning", f"stop {body.get('name')}", "devices")
        return await device_request("stop", name=body.get("name"))

    @app.post("/api/devices/reconnect")
    async def device_reconnect(request: Request) -> Any:
        body = await request.json()
        name = body.get("name")
        reply = await device_request("reconnect", timeout=180, name=name)
        cockpit.note("info", f"reconnected {', '.join(reply['reconnected'])}", name)
        return reply

    @app.post("/api/devices/focus")
    async def device_focus(request: Request) -> Any:
        body = await request.json()
        return await device_request(
            "focus",
            name=body.get("name"),
            on=bool(body.get("on", True)),
            exposure=body.get("exposure"),
        )

    # -- plans and the queue ----------------------------------------------

    async def queue_call(coro: Any) -> Any:
        try:
            reply = await coro
        except Exception as exc:  # noqa: BLE001 - the queue server's reason
            raise HTTPException(400, str(exc)) from None
        if isinstance(reply, dict) and reply.get("success") is False:
            raise HTTPException(400, reply.get("msg") or "refused")
        with contextlib.suppress(Exception):
            await cockpit._refresh_status()  # every page sees it at once
        return reply

    @app.post("/api/queue/add")
    async def queue_add(request: Request) -> Any:
        from bluesky_queueserver_api import BPlan

        from labsky.plans.signature import PlanArgumentError

        body = await request.json()
        name = str(body.get("plan", ""))
        try:
            args, kwargs = cockpit.plans.check(name, body.get("values") or {})
        except (PlanArgumentError, KeyError) as exc:
            raise HTTPException(422, str(exc).strip('"')) from None
        reply = await queue_call(cockpit.api.item_add(BPlan(name, *args, **kwargs)))
        cockpit.note("info", f"queued {name}", "queue")
        if body.get("start"):
            await queue_call(cockpit.api.queue_start())
        return {"item_uid": reply["item"]["item_uid"]}

    @app.post("/api/queue/{action}")
    async def queue_action(action: str, request: Request) -> Any:
        body = await request.json() if await request.body() else {}
        api = cockpit.api
        calls = {
            "start": lambda: api.queue_start(),
            "stop": lambda: api.queue_stop(),
            "stop_cancel": lambda: api.queue_stop_cancel(),
            "clear": lambda: api.queue_clear(),
            "remove": lambda: api.item_remove(uid=body["uid"]),
            "move": lambda: api.item_move(uid=body["uid"], pos=body["pos"]),
            "history_clear": lambda: api.history_clear(),
        }
        if action not in calls:
            raise HTTPException(404, f"no queue action {action!r}")
        await queue_call(calls[action]())
        cockpit.note("info", f"queue {action}", "queue")
        return {"ok": True}

    @app.post("/api/re/{action}")
    async def run_engine(action: str, request: Request) -> Any:
        body = await request.json() if await request.body() else {}
        api = cockpit.api
        calls = {
            "pause": lambda: api.re_pause(
                "immediate" if body.get("immediate") else "deferred"
            ),
            "resume": lambda: api.re_resume(),
            "abort": lambda: api.re_abort(),
            "stop": lambda: api.re_stop(),
            "halt": lambda: api.re_halt(),
        }
        if action not in calls:
            raise HTTPException(404, f"no RunEngine action {action!r}")
        await queue_call(calls[action]())
        cockpit.note("warning" if action != "resume" else "info", action, "queue")
        return {"ok": True}

    # -- runs -------------------------------------------------------------

    @app.get("/api/runs")
    async def runs(
        sample: str = "",
        plan: str = "",
        exit_status: str = "",
        since: str = "",
        until: str = "",
        text: str = "",
        limit: int = 50,
    ) -> Any:
        try:
            return await run_in_threadpool(
                browser.search, sample, plan, exit_status, since, until, text, limit
            )
        except (ValueError, LookupError) as exc:
            raise HTTPException(400, str(exc)) from None

    @app.get("/api/runs/{uid}")
    async def run(uid: str) -> Any:
        try:
            return await run_in_threadpool(browser.open, uid)
        except KeyError:
            raise HTTPException(404, f"no run {uid}") from None

    @app.get("/api/runs/{uid}/streams/{stream}")
    async def stream_table(uid: str, stream: str) -> Any:
        try:
            return await run_in_threadpool(browser.table, uid, stream)
        except KeyError:
            raise HTTPException(404, f"no stream {stream} in run {uid}") from None

    @app.get("/api/runs/{uid}/frames/{stream}/{key}/{index}")
    async def run_frame(uid: str, stream: str, key: str, index: int) -> Response:
        import numpy as np

        from labsky.daemon.device_api import downsample
        from labsky.gui.hub import frame_statistics

        try:
            frame = await run_in_threadpool(browser.frame, uid, stream, key, index)
        except (KeyError, IndexError) as exc:
            raise HTTPException(404, str(exc)) from None
        small, step = downsample(np.asarray(frame))
        header = {
            "name": key,
            "number": index,
            "shape": list(small.shape),
            "full_shape": list(frame.shape),
            "step": step,
            "dtype": small.dtype.name,
        }
        header.update(frame_statistics(header, small.tobytes()))
        encoded = json.dumps(header).encode()
        return Response(
            len(encoded).to_bytes(4, "little") + encoded + small.tobytes(),
            media_type="application/octet-stream",
        )

    @app.get("/api/runs/{uid}/file")
    async def run_file(uid: str) -> Any:
        path = await run_in_threadpool(browser.run_file, uid)
        if path is None:
            raise HTTPException(404, f"run {uid} has no HDF5 file here")
        return FileResponse(path, filename=path.name, media_type="application/x-hdf5")

    # -- the live connection ------------------------------------------------

    @app.websocket("/ws")
    async def websocket(socket: WebSocket) -> None:
        if loopback and _host_name(socket.headers.get("host", "")) not in (
            LOOPBACK_HOSTS
        ):
            await socket.close(code=1008)
            return
        origin = socket.headers.get("origin")
        host = socket.headers.get("host", "")
        if origin and origin.split("://", 1)[-1] != host:
            await socket.close(code=1008)  # another site's page
            return
        if not authorised(socket.cookies.get(COOKIE)):
            await socket.close(code=1008)
            return
        await socket.accept()
        page = Browser(send_text=socket.send_text, send_bytes=socket.send_bytes)

        async def receive() -> None:
            while True:
                message = json.loads(await socket.receive_text())
                if message.get("type") == "camera":
                    await cockpit.watch_camera(
                        page, str(message.get("name")), bool(message.get("on"))
                    )

        serving = asyncio.create_task(cockpit.attach(page))
        receiving = asyncio.create_task(receive())
        try:
            done, _ = await asyncio.wait(
                {serving, receiving}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                error = task.exception()
                if error is not None and not isinstance(error, WebSocketDisconnect):
                    logger.error("a page's connection failed", exc_info=error)
        finally:
            for task in (serving, receiving):
                task.cancel()
            await asyncio.gather(serving, receiving, return_exceptions=True)

    return app
