import re
import sys
import types
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from mailplane.devtenant.app import DevTenant


def test_dev_tenant__urls__loopback_without_trailing_slash():
    with DevTenant(with_exchange=False) as tenant:
        assert tenant.graph_base_url.startswith("http://127.0.0.1:")
        assert tenant.graph_base_url.endswith("/v1.0")
        assert tenant.exchange_base_url == tenant.base_url + "/adminapi"
        assert tenant.exchange_mounted is False


def test_dev_tenant__exchange_module_present__mounted_at_adminapi_with_its_own_state(monkeypatch):
    def create_app(state=None):
        async def invoke(request):
            return JSONResponse({"tenant": request.path_params["tenant"]})

        app = Starlette(routes=[Route("/beta/{tenant}/InvokeCommand", invoke, methods=["POST"])])
        app.state.exchange = state or {"fresh": True}
        return app

    fake = types.ModuleType("mailplane.devtenant.exchange")
    fake.create_app = create_app
    monkeypatch.setitem(sys.modules, "mailplane.devtenant.exchange", fake)
    with DevTenant() as tenant:
        response = httpx.post(f"{tenant.exchange_base_url}/beta/contoso/InvokeCommand", json={})
        assert tenant.exchange_mounted is True
        assert tenant.exchange_state == {"fresh": True}
    given = {"given": True}
    with DevTenant(exchange_state=given) as tenant:
        assert tenant.exchange_state is given
    assert response.json() == {"tenant": "contoso"}


def test_dev_tenant__no_exchange_module__graph_still_served(monkeypatch):
    monkeypatch.setitem(sys.modules, "mailplane.devtenant.exchange", None)  # import fails
    with DevTenant() as tenant:
        tenant.state.add_mailbox("a@contoso.com")
        response = httpx.get(f"{tenant.graph_base_url}/users/a@contoso.com", headers={"Authorization": "Bearer t"})
        assert tenant.exchange_mounted is False
    assert response.json()["mail"] == "a@contoso.com"


def test_request_too_large__413(tenant):
    response = httpx.post(
        f"{tenant.graph_base_url}/users/shared@contoso.com/sendMail",
        content=b"x" * (4 * 1024 * 1024 + 1),
        headers={"Authorization": "Bearer t", "Content-Type": "text/plain"},
    )
    assert response.status_code == 413


def test_production_modules__never_import_the_dev_tenant():
    package = Path(__file__).resolve().parents[2] / "mailplane"
    # `mailplane devtenant` serves it; `mailplane demo` runs everything on it by definition (lazy imports only).
    allowed = {package / "cli" / name for name in ("devtenant.py", "demo.py", "demo_sending.py", "demo_importing.py")}
    offenders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "devtenant" not in path.relative_to(package).parts[:1]
        and path not in allowed
        and re.search(r"^\s*(from|import)\s+mailplane\.devtenant", path.read_text(encoding="utf-8"), re.MULTILINE)
    ]
    assert offenders == []
