"""The InvokeCommand client: request shape, paging, retries, error parsing, and never leaking the token."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from exchange_tenant import TENANT

from mailplane.devtenant.exchange import Fault
from mailplane.exceptions import (
    ExchangeAccessDeniedError,
    ExchangeConflictError,
    ExchangeError,
    ExchangeNotFoundError,
)
from mailplane.exchange.client import ExchangeAdminClient, StaticTokenCredential, app_only_anchor_mailbox
from mailplane.exchange.errors import error_from_response, parse_failure

# -- request shape (a recording transport) --------------------------------------------------------------------------


class Recorder:
    def __init__(self, *responses):
        self.requests: list[httpx.Request] = []
        self.responses = list(responses)

    def __call__(self, request):
        self.requests.append(request)
        return self.responses.pop(0) if self.responses else httpx.Response(200, json={"value": []})


def recording_client(*responses, **kwargs):
    recorder = Recorder(*responses)
    client = ExchangeAdminClient(
        StaticTokenCredential("secret-token-value"),
        tenant_id=TENANT,
        http_client=httpx.Client(transport=httpx.MockTransport(recorder)),
        retry_backoff_seconds=0.0,
        **kwargs,
    )
    return client, recorder


def test_invoke__any_cmdlet__posts_cmdlet_input_with_app_only_headers():
    client, recorder = recording_client()
    client.delete_mailbox_permission("support@contoso.com", "alice@contoso.com")
    [request] = recorder.requests
    assert (request.method, str(request.url)) == (
        "POST",
        f"https://outlook.office365.com/adminapi/beta/{TENANT}/InvokeCommand",
    )
    assert json.loads(request.content) == {
        "CmdletInput": {
            "CmdletName": "Remove-MailboxPermission",
            "Parameters": {
                "Identity": "support@contoso.com",
                "User": "alice@contoso.com",
                "AccessRights": ["FullAccess"],
                "InheritanceType": "All",
                "Confirm": False,
            },
        }
    }
    assert request.headers["Authorization"] == "Bearer secret-token-value"
    assert request.headers["X-AnchorMailbox"] == f"APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{TENANT}"
    assert request.headers["Prefer"] == "odata.maxpagesize=1000"


def test_invoke__next_link__followed_with_a_post_of_the_same_body():
    next_link = f"https://outlook.office365.com/adminapi/beta/{TENANT}/InvokeCommand?$skiptoken=2"
    client, recorder = recording_client(
        httpx.Response(200, json={"value": [{"Name": "a"}, {"Name": "b"}], "@odata.nextLink": next_link}),
        httpx.Response(200, json={"value": [{"Name": "c"}]}),
    )
    assert [m.name for m in client.list_mailboxes()] == ["a", "b", "c"]
    assert [r.method for r in recorder.requests] == ["POST", "POST"]
    assert str(recorder.requests[1].url) == next_link
    assert recorder.requests[0].content == recorder.requests[1].content


def test_client__is_immutable_and_repr_hides_the_token():
    client, _ = recording_client()
    with pytest.raises(AttributeError, match="immutable"):
        client._tenant_id = "other"
    assert "secret-token-value" not in repr(client)
    assert repr(StaticTokenCredential("secret-token-value")) == "StaticTokenCredential(token=[redacted])"


def test_client__delegated_anchor__used_instead_of_system_mailbox():
    client, recorder = recording_client(anchor_mailbox="UPN:admin@contoso.com")
    client.list_service_principals()
    assert recorder.requests[0].headers["X-AnchorMailbox"] == "UPN:admin@contoso.com"
    assert app_only_anchor_mailbox("contoso.onmicrosoft.com").endswith("@contoso.onmicrosoft.com")


# -- retries --------------------------------------------------------------------------------------------------------


def test_read__503_then_success__retried():
    client, recorder = recording_client(httpx.Response(503), httpx.Response(200, json={"value": [{"Name": "x"}]}))
    assert client.get_management_scope("x").name == "x"
    assert len(recorder.requests) == 2


def test_write__503__not_replayed_and_error_says_it_may_have_applied():
    client, recorder = recording_client(httpx.Response(503))
    with pytest.raises(ExchangeError, match="the write may or may not have been applied") as caught:
        client.create_management_scope("x", "(Alias -eq 'x')")
    assert caught.value.status == 503
    assert len(recorder.requests) == 1


def test_write__429_with_retry_after__retried():
    client, recorder = recording_client(
        httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(200, json={"value": [{"Name": "x"}]})
    )
    assert client.create_management_scope("x", "(Alias -eq 'x')").name == "x"
    assert len(recorder.requests) == 2


def test_read__not_found_in_a_500_body__not_retried():
    body = {
        "error": {
            "code": "InternalServerError",
            "message": "Error executing cmdlet",
            "details": [
                {
                    "code": "Client",
                    "message": "Ex6F9304|Microsoft.Exchange.Configuration.Tasks."
                    "ManagementObjectNotFoundException|The operation couldn't be performed.",
                }
            ],
        }
    }
    client, recorder = recording_client(httpx.Response(500, json=body))
    with pytest.raises(ExchangeNotFoundError):
        client.get_mailbox("x")
    assert len(recorder.requests) == 1


def test_write__connection_refused__retried_because_nothing_was_sent():
    attempts = []

    def refuse_then_answer(request):
        attempts.append(request)
        if len(attempts) == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"value": []})

    client = ExchangeAdminClient(
        StaticTokenCredential("t"),
        tenant_id=TENANT,
        retry_backoff_seconds=0.0,
        http_client=httpx.Client(transport=httpx.MockTransport(refuse_then_answer)),
    )
    client.delete_management_scope("x")
    assert len(attempts) == 2


def test_write__read_timeout__not_retried():
    attempts = []

    def time_out(request):
        attempts.append(request)
        raise httpx.ReadTimeout("slow", request=request)

    client = ExchangeAdminClient(
        StaticTokenCredential("t"),
        tenant_id=TENANT,
        retry_backoff_seconds=0.0,
        http_client=httpx.Client(transport=httpx.MockTransport(time_out)),
    )
    with pytest.raises(ExchangeError, match=r"running New-Mailbox on 'sales': could not reach .*may or may not"):
        client.create_shared_mailbox("sales", "Sales", "sales", "sales@contoso.com")
    assert len(attempts) == 1


# -- errors ---------------------------------------------------------------------------------------------------------


def test_error__details_message__split_into_type_and_text():
    body = json.dumps(
        {
            "error": {
                "code": "BadRequest",
                "message": "Error executing cmdlet",
                "details": [
                    {
                        "code": "Client",
                        "message": "Ex1|Microsoft.Exchange.Data.Directory.ProxyAddressExistsException|"
                        'The proxy address "SMTP:a@b.com" is already being used.',
                    }
                ],
            }
        }
    )
    error = error_from_response("New-Mailbox", "a", 400, body)
    assert isinstance(error, ExchangeConflictError)
    assert error.exception_type == "Microsoft.Exchange.Data.Directory.ProxyAddressExistsException"
    assert str(error) == (
        "running New-Mailbox on 'a': ProxyAddressExistsException: The proxy address \"SMTP:a@b.com\" is already "
        "being used. Another object already uses that name or address; rename one of them or import the existing "
        "object."
    )


def test_error__no_details__falls_back_to_inner_exception_then_message():
    inner = {
        "error": {
            "message": "Error executing cmdlet",
            "innererror": {"internalexception": {"message": "Inner text", "type": "Microsoft.Exchange.X.YException"}},
        }
    }
    assert parse_failure(400, json.dumps(inner)).message == "Inner text"
    assert parse_failure(400, json.dumps({"error": {"message": "Only this"}})).message == "Only this"


def test_error__403_with_nul_body__reason_from_diagnostics_header():
    error = error_from_response("New-ManagementRoleAssignment", "x", 403, b"\x00", '2000008;reason="no role"')
    assert isinstance(error, ExchangeAccessDeniedError)
    assert str(error).startswith("running New-ManagementRoleAssignment on 'x': HTTP 403: 2000008;reason=\"no role\".")


def test_errors__against_the_emulator__not_found_conflict_denied(emulator):
    client = emulator.client()
    with pytest.raises(ExchangeNotFoundError, match="couldn't be found"):
        client.get_management_scope("nope")
    client.create_management_scope("s", "(Alias -eq 'alice')")
    with pytest.raises(ExchangeConflictError, match="already exists"):
        client.create_management_scope("s", "(Alias -eq 'alice')")
    emulator.state.inject_fault(Fault.forbidden("Get-ManagementScope"))
    with pytest.raises(ExchangeAccessDeniedError, match="insufficient_auth_role"):
        client.get_management_scope("s")


def test_throttled_read__429_from_emulator__retried_until_it_passes(emulator):
    emulator.state.inject_fault(Fault.throttle("Get-Mailbox", times=2))
    assert emulator.client().get_mailbox("alice@contoso.com").recipient_type_details == "UserMailbox"
    assert emulator.state.cmdlets_called().count("Get-Mailbox") == 3


def test_paging__against_the_emulator__all_rows_collected(emulator):
    for index in range(5):
        emulator.state.add_user_mailbox(TENANT, f"user{index}@contoso.com")
    assert len(emulator.client(page_size=2).list_mailboxes()) == 9


def test_token__debug_logging_on__never_appears_in_logs(emulator, caplog):
    caplog.set_level(logging.DEBUG)
    emulator.state.inject_fault(Fault.throttle("Get-Mailbox"))
    emulator.client().get_mailbox("alice@contoso.com")
    assert "devtenant-exchange-admin-token" not in caplog.text


def test_create__new_cmdlet_answers_empty_value__object_read_back():
    client, recorder = recording_client(
        httpx.Response(200, json={"value": []}),
        httpx.Response(200, json={"value": [{"Name": "s", "RecipientFilter": "(Alias -eq 'x')"}]}),
    )
    scope = client.create_management_scope("s", "(Alias -eq 'x')")
    assert (scope.name, scope.recipient_restriction_filter) == ("s", "(Alias -eq 'x')")
    assert [json.loads(r.content)["CmdletInput"]["CmdletName"] for r in recorder.requests] == [
        "New-ManagementScope",
        "Get-ManagementScope",
    ]
