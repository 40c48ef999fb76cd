"""The dev tenant as one loopback server: Graph mail under ``/v1.0``, Exchange admin under ``/adminapi``.

    with DevTenant(concurrency=4, window_limit=10_000) as tenant:
        tenant.state.add_mailbox("shared@contoso.com", kind="shared")
        tenant.state.seed_eml("shared@contoso.com", eml_bytes)
        client.request_adapter.base_url = tenant.graph_base_url
        ...
        assert tenant.requests.count(kind="sendMail") == 1

Besides the emulated APIs, ``/_devtenant/*`` is a small control API (faults, request counters, outbox, seeding)
for tools outside the Python process, e.g. a demo driven from a shell.
"""

from __future__ import annotations

import base64
import importlib
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Self

from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from mailplane.devtenant.faults import FaultInjector
from mailplane.devtenant.graph import ConnectionDropped, GraphEmulator
from mailplane.devtenant.request_log import RequestLog
from mailplane.devtenant.server import BackgroundServer
from mailplane.devtenant.state import DevTenantState
from mailplane.devtenant.throttling import MailboxThrottle

if TYPE_CHECKING:
    from types import TracebackType

    from starlette.requests import Request

    from mailplane.devtenant.notifications import Notifier

__all__ = ["DevTenant", "create_app"]


class _HideDroppedConnections(logging.Filter):
    """uvicorn logs an aborted response as an application error; an injected drop is not one."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, ConnectionDropped):
                return False
            exc = exc.__cause__ or exc.__context__
        return True


_DROP_FILTER = _HideDroppedConnections()
logging.getLogger("uvicorn.error").addFilter(_DROP_FILTER)


class _RawAsgi:
    """Wrap an ASGI callable so Starlette's Route passes it scope/receive/send (bound methods get a Request)."""

    def __init__(self, handler: Any) -> None:
        self._handler = handler

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._handler(scope, receive, send)


def _exchange_app(exchange_state: Any | None) -> Any | None:
    """Build the Exchange admin emulator, when its module is present (it has its own state, ``ExchangeAdminState``)."""
    try:
        module = importlib.import_module("mailplane.devtenant.exchange")
    except ImportError as error:
        if error.name != "mailplane.devtenant.exchange":
            raise  # the module is there but broken: say so instead of silently serving without it
        return None
    return module.create_app(state=exchange_state)


def _control_routes(emulator: GraphEmulator) -> list[Route]:
    state, faults, log = emulator.state, emulator.faults, emulator.request_log

    async def list_faults(request: Request) -> Response:
        del request
        return JSONResponse({"faults": [f.describe() for f in faults.faults]})

    async def add_fault(request: Request) -> Response:
        options = await request.json()
        kind = options.pop("kind", None)
        try:
            fault = faults.add(str(kind), **options)
        except (TypeError, ValueError) as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(fault.describe(), status_code=201)

    async def clear_faults(request: Request) -> Response:
        del request
        faults.clear()
        return Response(status_code=204)

    async def requests(request: Request) -> Response:
        del request
        records = log.records
        return JSONResponse(
            {
                "total": sum(1 for r in records if r.kind != "batch"),
                "throttled": log.throttled,
                "counters": log.counters(),
            }
        )

    async def clear_requests(request: Request) -> Response:
        del request
        log.clear()
        emulator.throttle.reset()
        return Response(status_code=204)

    async def outbox(request: Request) -> Response:
        mailbox = request.path_params["mailbox"]
        try:
            sent = state.outbox(mailbox)
        except KeyError as error:
            return JSONResponse({"error": str(error)}, status_code=404)
        return JSONResponse(
            {
                "value": [
                    {
                        "internetMessageId": m.internet_message_id,
                        "subject": m.subject,
                        "to": m.to,
                        "cc": m.cc,
                        "bcc": m.bcc,
                        "sentAt": m.sent_at.isoformat(),
                        "via": m.via,
                        "mime": base64.b64encode(m.mime).decode("ascii"),
                    }
                    for m in sent
                ]
            }
        )

    async def seed(request: Request) -> Response:
        mailbox = request.path_params["mailbox"]
        folder = request.query_params.get("folder", "inbox")
        message_id = state.seed_eml(
            mailbox, await request.body(), folder, is_read=request.query_params.get("isRead", "false").lower() == "true"
        )
        return JSONResponse({"id": message_id}, status_code=201)

    return [
        Route("/_devtenant/faults", list_faults, methods=["GET"]),
        Route("/_devtenant/faults", add_fault, methods=["POST"]),
        Route("/_devtenant/faults", clear_faults, methods=["DELETE"]),
        Route("/_devtenant/requests", requests, methods=["GET"]),
        Route("/_devtenant/requests", clear_requests, methods=["DELETE"]),
        Route("/_devtenant/mailboxes/{mailbox}/outbox", outbox, methods=["GET"]),
        Route("/_devtenant/mailboxes/{mailbox}/messages", seed, methods=["POST"]),
    ]


def create_app(emulator: GraphEmulator, *, with_exchange: bool = True, exchange_state: Any | None = None) -> Starlette:
    """Build the combined ASGI app for one emulator (Graph + upload URLs + control API [+ Exchange admin]).

    ``app.state.exchange_app`` is the mounted Exchange app (or None); its own state is ``exchange_app.state.exchange``.
    """
    routes: list[Any] = [
        Route("/v1.0{rest:path}", emulator, methods=["GET", "POST", "PATCH", "PUT", "DELETE"]),
        Route("/_upload/{session}", _RawAsgi(emulator.upload_chunk), methods=["PUT", "DELETE"]),
        *_control_routes(emulator),
    ]
    exchange = _exchange_app(exchange_state) if with_exchange else None
    if exchange is not None:
        routes.append(Mount("/adminapi", app=exchange))
    app = Starlette(routes=routes)
    app.state.exchange_app = exchange
    return app


class DevTenant:
    """Start the dev tenant on 127.0.0.1 (a context manager); see the module docstring.

    Options: ``concurrency`` (concurrent requests per mailbox, default 4), ``window_limit`` (requests per mailbox
    per ``window_seconds``, defaults 10,000 per 600 s), ``concurrency_retry_after`` (seconds), ``latency_ms`` (added
    to every request), ``token`` (only this bearer token is accepted; default: any non-empty token),
    ``max_request_bytes`` (4 MB), ``subscription_max_minutes`` (4230), ``delta_token_ttl``, ``port`` (0 = free
    port), ``state`` (share or pre-seed a :class:`DevTenantState`), ``tenant_id`` and ``domain`` (the default
    tenant), ``with_exchange`` (mount the Exchange admin emulator when present), ``exchange_state`` (an
    ``ExchangeAdminState`` for it; default: the Exchange emulator creates an empty one, see ``exchange_state``).
    """

    def __init__(
        self,
        *,
        concurrency: int = 4,
        window_limit: int = 10_000,
        window_seconds: float = 600.0,
        concurrency_retry_after: int = 1,
        latency_ms: float = 0.0,
        token: str | None = None,
        max_request_bytes: int = 4 * 1024 * 1024,
        subscription_max_minutes: int = 4230,
        delta_token_ttl: timedelta = timedelta(days=7),
        port: int = 0,
        state: DevTenantState | None = None,
        tenant_id: str = "00000000-0000-0000-0000-0000000000aa",
        domain: str = "contoso.com",
        with_exchange: bool = True,
        exchange_state: Any | None = None,
    ) -> None:
        """Configure; nothing listens until :meth:`start` (or ``with``)."""
        self.state = state or DevTenantState(tenant_id=tenant_id, domain=domain, delta_token_ttl=delta_token_ttl)
        self.faults = FaultInjector()
        self.requests = RequestLog()
        self.throttle = MailboxThrottle(
            concurrency=concurrency,
            window_limit=window_limit,
            window_seconds=window_seconds,
            concurrency_retry_after=concurrency_retry_after,
        )
        self.graph = GraphEmulator(
            self.state,
            throttle=self.throttle,
            faults=self.faults,
            request_log=self.requests,
            token=token,
            max_request_bytes=max_request_bytes,
            subscription_max_minutes=subscription_max_minutes,
            latency_ms=latency_ms,
        )
        self.app = create_app(self.graph, with_exchange=with_exchange, exchange_state=exchange_state)
        exchange_app = self.app.state.exchange_app
        self.exchange_mounted: bool = exchange_app is not None
        # The Exchange emulator's own state (its ExchangeAdminState), when mounted.
        self.exchange_state: Any | None = getattr(getattr(exchange_app, "state", None), "exchange", exchange_state)
        self._server = BackgroundServer(self.app, port=port)
        self._base_url: str | None = None

    @property
    def notifier(self) -> Notifier:
        """Change-notification delivery (``deliveries``, ``wait_idle()``, ``send_lifecycle_event()``)."""
        return self.graph.notifier

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if self._base_url is None:
            raise RuntimeError("the dev tenant is not started; use 'with DevTenant() as tenant:'")
        return self._base_url

    @property
    def graph_base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1.0`` (no trailing slash), for ``request_adapter.base_url``."""
        return f"{self.base_url}/v1.0"

    @property
    def exchange_base_url(self) -> str:
        """``http://127.0.0.1:PORT/adminapi``."""
        return f"{self.base_url}/adminapi"

    def start(self) -> Self:
        """Start serving."""
        self._base_url = self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving and the notification thread."""
        self._server.stop()
        self.graph.notifier.close()
        self._base_url = None

    def __enter__(self) -> Self:
        """Start on entry."""
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop on exit."""
        self.stop()
