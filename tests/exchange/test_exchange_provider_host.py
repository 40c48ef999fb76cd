"""The providers as Pulumi's engine drives them: in a separate ``python -m pulumi.dynamic`` host process, over gRPC.

The host unpickles the provider from the ``__provider`` property (by reference: it must import ``components.exchange``
from the project directory, as the engine starts it there) and serialises what the provider returns.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from exchange_tenant import TENANT
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import proto, rpc
from pulumi.runtime.proto import provider_pb2_grpc

from components.exchange.mailbox import MailboxProvider
from mailplane.devtenant.exchange import DEFAULT_TOKEN

ROOT = Path(__file__).resolve().parents[2]
URN = "urn:pulumi:contoso::mailplane::pulumi-python:dynamic/exchange:SharedMailbox::support"


def struct(values):
    return asyncio.run(rpc.serialize_properties(values, {}))


@pytest.fixture
def host(emulator):
    environment = {
        **os.environ,
        "MAILPLANE_EXCHANGE_ADMIN_URL": emulator.admin_api_url,
        "MAILPLANE_EXCHANGE_TOKEN": DEFAULT_TOKEN,
    }
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.dynamic"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        port = int(process.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield provider_pb2_grpc.ResourceProviderStub(channel)
    finally:
        process.kill()
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()


def test_host__shared_mailbox_check_create_read_delete__runs_out_of_process(emulator, host):
    provider_blob = serialize_provider(MailboxProvider())
    news = {
        "__provider": provider_blob,
        "tenant_id": TENANT,
        "address": "Support@contoso.com",
        "display_name": "Support",
        "remove_on_delete": True,
    }
    checked = host.Check(proto.CheckRequest(urn=URN, olds=struct({}), news=struct(news)))
    assert list(checked.failures) == []
    inputs = rpc.deserialize_properties(checked.inputs)
    assert (inputs["address"], inputs["alias"], inputs["block_sign_in"]) == ("support@contoso.com", "support", True)

    created = host.Create(proto.CreateRequest(urn=URN, properties=checked.inputs))
    outs = rpc.deserialize_properties(created.properties)
    assert created.id == "support@contoso.com"
    assert (outs["recipient_type_details"], outs["adopted"]) == ("SharedMailbox", False)

    emulator.client().set_mailbox("support@contoso.com", display_name="Renamed")
    read = host.Read(proto.ReadRequest(id=created.id, urn=URN, properties=created.properties))
    assert rpc.deserialize_properties(read.properties)["display_name"] == "Renamed"

    host.Delete(proto.DeleteRequest(id=created.id, urn=URN, properties=created.properties))
    assert emulator.client().get_mailbox("support@contoso.com", soft_deleted=True).soft_deleted


def test_host__exchange_refuses__error_reaches_the_engine_with_the_reason(emulator, host):
    emulator.state.deny_cmdlets(TENANT, "New-Mailbox")
    news = {
        "__provider": serialize_provider(MailboxProvider()),
        "tenant_id": TENANT,
        "address": "support@contoso.com",
        "display_name": "Support",
    }
    checked = host.Check(proto.CheckRequest(urn=URN, olds=struct({}), news=struct(news)))
    with pytest.raises(grpc.RpcError) as caught:
        host.Create(proto.CreateRequest(urn=URN, properties=checked.inputs))
    assert "running New-Mailbox on 'support': HTTP 403" in caught.value.details()
    assert DEFAULT_TOKEN not in caught.value.details()
