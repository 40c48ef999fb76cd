"""Everything the emulator returns uses only the property names and value types the Graph v1.0 CSDL declares."""

import base64
import importlib.util
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from devtenant_harness import SENDER, SHARED, eml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mailplane.devtenant.server import BackgroundServer

REPO = Path(__file__).resolve().parents[2]
FACTS_FILE = REPO / "tests" / "fixtures" / "graph_types.json"
CSDL = REPO.parent / "shared" / "data" / "graph-metadata" / "v1.0-Prod.csdl"
FACTS = json.loads(FACTS_FILE.read_text())
HEADERS = {"Authorization": "Bearer t"}
DATETIME_OFFSET = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?(Z|[+-]\d{2}:\d{2})")
# OData control information a payload may carry besides declared properties.
ANNOTATIONS = {
    "@odata.context",
    "@odata.type",
    "@odata.etag",
    "@odata.id",
    "@odata.nextLink",
    "@odata.deltaLink",
    "@odata.count",
    "@odata.mediaContentType",
    "@removed",
}


def _build_module():
    spec = importlib.util.spec_from_file_location("build_graph_types", REPO / "scripts" / "build_graph_types.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not CSDL.exists(), reason="the Graph CSDL in ../shared/data/graph-metadata is not available here")
def test_graph_types_fixture__regenerated_from_csdl__identical():
    module = _build_module()
    assert module.render(module.build(CSDL)) == FACTS_FILE.read_text()


def _problems(value, type_name, where="$"):  # noqa: C901, PLR0911, PLR0912 - one branch per kind of CSDL type
    """Every property or value that the CSDL does not declare for ``type_name`` (recursive)."""
    if value is None:
        return []
    collection = type_name.startswith("Collection(")
    inner = type_name.removeprefix("Collection(").removesuffix(")").removeprefix("graph.")
    if collection:
        if not isinstance(value, list):
            return [f"{where}: expected a JSON array for {type_name}, got {type(value).__name__}"]
        return [p for i, item in enumerate(value) for p in _problems(item, inner, f"{where}[{i}]")]
    if inner.startswith("Edm."):
        return _primitive_problems(value, inner, where)
    if inner in FACTS["enums"]:
        ok = isinstance(value, str) and all(v.strip() in FACTS["enums"][inner] for v in value.split(","))
        return [] if ok else [f"{where}: {value!r} is not a member of enum {inner}"]
    if inner not in FACTS["types"]:
        return [f"{where}: type {inner} is not in the facts file"]
    if not isinstance(value, dict):
        return [f"{where}: expected an object of {inner}, got {type(value).__name__}"]
    if FACTS["types"][inner]["openType"] and not FACTS["types"][inner]["properties"]:
        return []  # e.g. resourceData: open, nothing declared (Graph puts the message's @odata.type and id in it)
    declared_type = value.get("@odata.type", "").removeprefix("#microsoft.graph.").removeprefix("#Microsoft.Graph.")
    if declared_type and declared_type.lower() != inner.lower():
        actual = next((t for t in FACTS["types"] if t.lower() == declared_type.lower()), None)
        if actual is None or inner not in FACTS["types"][actual]["baseTypes"]:
            return [f"{where}: @odata.type {declared_type} is not {inner} or derived from it"]
        inner = actual
    facts = FACTS["types"][inner]
    members = {**facts["properties"], **facts["navigationProperties"]}
    problems = []
    for key, item in value.items():
        if key.startswith("@"):
            if key not in ANNOTATIONS:
                problems.append(f"{where}.{key}: unknown annotation")
            continue
        if key not in members:
            problems.append(f"{where}.{key}: not a property of {inner}")
            continue
        problems.extend(_problems(item, members[key], f"{where}.{key}"))
    return problems


def _primitive_problems(value, edm, where):  # noqa: PLR0911 - one return per Edm type
    def bad(expected):
        return [f"{where}: {value!r} is not {expected}"]

    if edm == "Edm.String":
        return [] if isinstance(value, str) else bad("a string")
    if edm == "Edm.Boolean":
        return [] if isinstance(value, bool) else bad("a Boolean")
    if edm in ("Edm.Int32", "Edm.Int64"):
        return [] if isinstance(value, int) and not isinstance(value, bool) else bad("an integer")
    if edm == "Edm.DateTimeOffset":
        ok = isinstance(value, str) and DATETIME_OFFSET.fullmatch(value)
        return [] if ok else bad("an ISO 8601 DateTimeOffset")
    if edm == "Edm.Binary":
        try:
            base64.b64decode(value, validate=True)
        except (TypeError, ValueError):
            return bad("base64")
        return []
    if edm == "Edm.Guid":
        try:
            uuid.UUID(value)
        except (AttributeError, ValueError):
            return bad("a GUID")
        return []
    return bad(f"a known primitive ({edm})")


def _collection(body, type_name):
    problems = [f"$.{k}: unknown annotation" for k in body if k.startswith("@") and k not in ANNOTATIONS]
    problems += [
        f"$.{k}: unexpected member of a collection page" for k in body if not k.startswith("@") and k != "value"
    ]
    return problems + _problems(body["value"], f"Collection(graph.{type_name})", "$.value")


def test_validator__undeclared_property_and_wrong_type__reported():
    assert _problems({"id": "x", "size": 1}, "graph.message") == ["$.size: not a property of message"]
    assert _problems({"isRead": "yes"}, "graph.message") == ["$.isRead: 'yes' is not a Boolean"]
    assert _problems({"flag": {"flagStatus": "maybe"}}, "graph.message") == [
        "$.flag.flagStatus: 'maybe' is not a member of enum followupFlagStatus"
    ]
    assert _problems({"sizeInBytes": 3}, "graph.mailFolder") == ["$.sizeInBytes: not a property of mailFolder"]


class _Hook:
    def __init__(self):
        self.notifications = []

        async def hook(request: Request) -> Response:
            token = request.query_params.get("validationToken")
            if token is not None:
                return PlainTextResponse(token)
            self.notifications.append(await request.json())
            return Response(status_code=202)

        self.app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])


def test_payloads__every_endpoint__only_csdl_properties_and_types(tenant):
    graph = tenant.graph_base_url
    attachment_mail = eml(
        "files", attachments=[("a.pdf", "application/pdf", b"%PDF"), ("n.eml", "message/rfc822", eml("inner"))]
    )
    message_id = tenant.state.seed_eml(SHARED, attachment_mail)
    tenant.state.seed_eml(SHARED, eml("second", headers={"In-Reply-To": "<a@example.com>"}))
    checks = []

    def get(path, **params):
        response = httpx.get(f"{graph}{path}", params=params, headers=HEADERS)
        assert response.status_code < 300, response.text
        return response.json()

    user = f"/users/{SHARED}"
    checks.append(("message", _problems(get(f"{user}/messages/{message_id}"), "graph.message")))
    checks.append(
        (
            "message+expand",
            _problems(get(f"{user}/messages/{message_id}", **{"$expand": "attachments"}), "graph.message"),
        )
    )
    checks.append(
        (
            "message+select",
            _problems(
                get(
                    f"{user}/messages/{message_id}",
                    **{
                        "$select": "internetMessageHeaders,uniqueBody,subject",
                        "$expand": "singleValueExtendedProperties($filter=id eq 'Long 0x0E08')",
                    },
                ),
                "graph.message",
            ),
        )
    )
    checks.append(
        ("list", _collection(get(f"{user}/mailFolders/inbox/messages", **{"$top": "1", "$count": "true"}), "message"))
    )
    delta = get(f"{user}/mailFolders/inbox/messages/delta")
    checks.append(("delta", _collection(delta, "message")))
    tenant.state.delete_message(tenant.state.mailbox(SHARED), tenant.state.messages(SHARED)[0])
    checks.append(
        ("delta removed", _collection(httpx.get(delta["@odata.deltaLink"], headers=HEADERS).json(), "message"))
    )
    checks.append(("folders", _collection(get(f"{user}/mailFolders"), "mailFolder")))
    checks.append(("folder", _problems(get(f"{user}/mailFolders/inbox"), "graph.mailFolder")))
    checks.append(("attachments", _collection(get(f"{user}/messages/{message_id}/attachments"), "attachment")))
    checks.append(
        (
            "attachments+select",
            _collection(get(f"{user}/messages/{message_id}/attachments", **{"$select": "id,name,size"}), "attachment"),
        )
    )
    draft = httpx.post(f"{graph}{user}/messages", json={"subject": "d"}, headers=HEADERS).json()
    checks.append(("draft", _problems(draft, "graph.message")))
    patched = httpx.patch(
        f"{graph}{user}/messages/{draft['id']}",
        headers=HEADERS,
        json={"flag": {"flagStatus": "flagged", "dueDateTime": {"dateTime": "2024-01-01T00:00:00", "timeZone": "UTC"}}},
    ).json()
    checks.append(("patched", _problems(patched, "graph.message")))
    session = httpx.post(
        f"{graph}{user}/messages/{draft['id']}/attachments/createUploadSession",
        headers=HEADERS,
        json={"AttachmentItem": {"attachmentType": "file", "name": "b", "size": 3}},
    ).json()
    checks.append(("uploadSession", _problems(session, "graph.uploadSession")))
    chunk = httpx.put(session["uploadUrl"], content=b"ab", headers={"Content-Range": "bytes 0-1/3"}).json()
    checks.append(("upload chunk", _problems(chunk, "graph.uploadSession")))
    hook = _Hook()
    with BackgroundServer(hook.app) as server:
        expiration = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        subscription = httpx.post(
            f"{graph}/subscriptions",
            headers=HEADERS,
            json={
                "changeType": "created,updated",
                "notificationUrl": f"{server.base_url}/hook",
                "resource": f"users/{SHARED}/messages",
                "expirationDateTime": expiration,
                "clientState": "c",
            },
        ).json()
        checks.append(("subscription", _problems(subscription, "graph.subscription")))
        checks.append(("subscriptions", _collection(get("/subscriptions"), "subscription")))
        tenant.state.seed_eml(SHARED, eml("notify"))
        assert tenant.notifier.wait_idle()
    checks.append(("notification", _problems(hook.notifications[0], "graph.changeNotificationCollection")))
    assert [(name, problems) for name, problems in checks if problems] == []


def test_errors__any_failure__graph_error_shape_and_request_id_headers(tenant):
    responses = [
        httpx.get(f"{tenant.graph_base_url}/users/{SHARED}/messages"),
        httpx.get(f"{tenant.graph_base_url}/users/nobody@contoso.com/messages", headers=HEADERS),
        httpx.get(f"{tenant.graph_base_url}/users/{SHARED}/messages/bad", headers=HEADERS),
        httpx.get(f"{tenant.graph_base_url}/users/{SHARED}/messages", params={"$select": "nope"}, headers=HEADERS),
        httpx.post(f"{tenant.graph_base_url}/users/{SHARED}/sendMail", content=b"{", headers=HEADERS),
        httpx.get(f"{tenant.graph_base_url}/nothing/here", headers=HEADERS),
    ]
    for response in responses:
        body = response.json()
        assert set(body) == {"error"}
        assert set(body["error"]) == {"code", "message", "innerError"}
        assert set(body["error"]["innerError"]) == {"date", "request-id", "client-request-id"}
        assert body["error"]["innerError"]["request-id"] == response.headers["request-id"]
        assert response.headers["client-request-id"]


def _sample(type_name):
    return {
        "graph.message": {"subject": "s", "toRecipients": [{"emailAddress": {"address": SHARED}}]},
        "Edm.Boolean": True,
        "Edm.String": "archive",
        "graph.attachmentItem": {"attachmentType": "file", "name": "f.bin", "size": 10},
        "Collection(graph.recipient)": [{"emailAddress": {"address": "someone@example.com"}}],
    }[type_name]


@pytest.mark.parametrize(
    ("action", "path", "status"),
    [
        ("sendMail", "/users/{user}/sendMail", 202),
        ("move", "/users/{user}/messages/{message}/move", 201),
        ("copy", "/users/{user}/messages/{message}/copy", 201),
        ("createUploadSession", "/users/{user}/messages/{message}/attachments/createUploadSession", 201),
        ("send", "/users/{user}/messages/{draft}/send", 202),
        ("createReply", "/users/{user}/messages/{message}/createReply", 201),
        ("createReplyAll", "/users/{user}/messages/{message}/createReplyAll", 201),
        ("createForward", "/users/{user}/messages/{message}/createForward", 201),
        ("reply", "/users/{user}/messages/{message}/reply", 202),
        ("replyAll", "/users/{user}/messages/{message}/replyAll", 202),
        ("forward", "/users/{user}/messages/{message}/forward", 202),
    ],
)
@pytest.mark.parametrize("casing", ["csdl", "camel"])
def test_actions__csdl_parameter_names_in_either_casing__bound(tenant, action, path, status, casing):
    message_id = tenant.state.seed_eml(SENDER, eml(to=SENDER))
    draft = httpx.post(
        f"{tenant.graph_base_url}/users/{SENDER}/messages", headers=HEADERS, json=_sample("graph.message")
    ).json()["id"]
    parameters = FACTS["actions"][action]["parameters"]
    body = {
        (name if casing == "csdl" else name[0].lower() + name[1:]): _sample(type_name)
        for name, type_name in parameters.items()
    }
    url = tenant.graph_base_url + path.format(user=SENDER, message=message_id, draft=draft)
    response = httpx.post(url, json=body, headers=HEADERS) if body else httpx.post(url, headers=HEADERS)
    assert response.status_code == status, response.text
