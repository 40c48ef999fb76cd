from datetime import UTC, datetime, timedelta

import pytest
from devtenant_harness import SHARED, eml, graph_client, run
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.subscription import Subscription
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mailplane.devtenant.server import BackgroundServer


class Receiver:
    """A webhook endpoint that answers the validation handshake and keeps the notifications."""

    def __init__(self, *, echo=True):
        self.notifications = []
        self.validations = 0
        self.echo = echo

        async def hook(request: Request) -> Response:
            token = request.query_params.get("validationToken")
            if token is not None:
                self.validations += 1
                return PlainTextResponse(token if self.echo else "wrong")
            self.notifications.append(await request.json())
            return Response(status_code=202)

        self.app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])


@pytest.fixture
def receiver():
    hook = Receiver()
    with BackgroundServer(hook.app) as server:
        hook.url = f"{server.base_url}/hook"
        yield hook


def _subscription(url, minutes=60, resource=f"users/{SHARED}/mailFolders('Inbox')/messages"):
    return Subscription(
        change_type="created",
        notification_url=url,
        resource=resource,
        expiration_date_time=datetime.now(UTC) + timedelta(minutes=minutes),
        client_state="s3cret",
    )


def test_subscription__handshake_then_new_mail__notification_with_client_state(tenant, receiver):
    async def scenario():
        return await graph_client(tenant).subscriptions.post(_subscription(receiver.url))

    created = run(scenario)
    assert receiver.validations == 1
    assert created.id
    assert created.client_state == "s3cret"
    assert created.change_type == "created"
    message_id = tenant.state.seed_eml(SHARED, eml())
    tenant.state.seed_eml(SHARED, eml(), folder="archive")  # other folder: no notification
    assert tenant.notifier.wait_idle()
    [payload] = receiver.notifications
    [note] = payload["value"]
    assert (note["subscriptionId"], note["clientState"], note["changeType"]) == (created.id, "s3cret", "created")
    assert note["resourceData"]["id"] == message_id
    assert note["resource"].endswith(f"/Messages/{message_id}")


def test_subscription__endpoint_does_not_echo__400_validation_error(tenant):
    hook = Receiver(echo=False)
    with BackgroundServer(hook.app) as server:

        async def scenario():
            await graph_client(tenant).subscriptions.post(_subscription(f"{server.base_url}/hook"))

        with pytest.raises(ODataError) as caught:
            run(scenario)
    assert (caught.value.response_status_code, caught.value.error.code) == (400, "ValidationError")
    assert tenant.state.subscriptions == {}


def test_subscription__too_long_expiration__400(tenant, receiver):
    async def scenario():
        await graph_client(tenant).subscriptions.post(_subscription(receiver.url, minutes=5000))

    with pytest.raises(ODataError) as caught:
        run(scenario)
    assert caught.value.response_status_code == 400
    assert "4230 minutes" in caught.value.error.message


def test_subscription__renew_reauthorize_delete__200_204_204(tenant, receiver):
    async def scenario():
        subscriptions = graph_client(tenant).subscriptions
        created = await subscriptions.post(_subscription(receiver.url, resource=f"users/{SHARED}/messages"))
        later = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=3000)
        renewed = await subscriptions.by_subscription_id(created.id).patch(Subscription(expiration_date_time=later))
        await subscriptions.by_subscription_id(created.id).reauthorize.post()
        await subscriptions.by_subscription_id(created.id).delete()
        return later, renewed

    later, renewed = run(scenario)
    assert renewed.expiration_date_time == later
    assert tenant.state.subscriptions == {}
    assert tenant.requests.count(kind="subscription.reauthorize", status=204) == 1
    assert tenant.requests.count(kind="subscription.delete", status=204) == 1


def test_subscription__lifecycle_event__posted_to_lifecycle_url(tenant, receiver):
    async def scenario():
        body = _subscription(receiver.url)
        body.lifecycle_notification_url = receiver.url
        return await graph_client(tenant).subscriptions.post(body)

    created = run(scenario)
    tenant.notifier.send_lifecycle_event(created.id, "reauthorizationRequired")
    assert tenant.notifier.wait_idle()
    assert receiver.notifications[-1]["value"][0]["lifecycleEvent"] == "reauthorizationRequired"
