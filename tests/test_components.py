"""Mock-engine tests of the Pulumi components: what is registered, with which inputs, which outputs are secret.

Failures name the resource URN. Every test that asserts inside an Output is decorated with @pulumi.runtime.test.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pulumi
import pytest

from mailplane.certificates import read_certificate
from mailplane.permissions import catalog
from mailplane.tenant import TENANT_WIDE_ACKNOWLEDGEMENT, parse_tenant_config
from tests.conftest import REPO_ROOT

TODAY = dt.date(2026, 11, 22)
APP = "azuread:index/application:Application"
ROLE = "azuread:index/appRoleAssignment:AppRoleAssignment"
GRANT = "azuread:index/servicePrincipalDelegatedPermissionGrant:ServicePrincipalDelegatedPermissionGrant"
PASSWORD = "azuread:index/applicationPassword:ApplicationPassword"


def tenant(**overrides):
    raw = {
        "tenant": {"id": "11111111-1111-1111-1111-111111111111", "primaryDomain": "contoso.com"},
        "app": {"displayName": "Contoso mail", "owners": ["22222222-2222-2222-2222-222222222222"]},
        "presets": ["outbound-send", "inbound-import"],
        "mailboxes": {"designated": "noreply@contoso.com", "shared": [{"address": "support@contoso.com"}]},
        "credentials": {"clientSecret": {"anchorDate": "2026-01-01"}},
    }
    raw.update(overrides)
    return parse_tenant_config(raw, today=TODAY)


def build(config, certificate_pem=None):
    from components.mail_integration import MailIntegration, MailIntegrationArgs

    return MailIntegration("t", MailIntegrationArgs(config=config, today=TODAY, certificate_pem=certificate_pem))


def registered(monitor, typ):
    return [r for r in monitor.recorded if r.type == typ]


def run(fn):
    """Run a program under the mock engine to completion (the decorator awaits every outstanding output)."""
    pulumi.runtime.test(fn)()


def test_rbac__program_run__no_entra_mail_application_grant(pulumi_mocks):
    run(lambda: build(tenant()).application.id)
    roles = registered(pulumi_mocks, ROLE)
    mail_role_ids = {catalog().require(n, "application").id for n in ("Mail.Send", "Mail.ReadWrite")}
    for role in roles:
        assert role.inputs["appRoleId"] not in mail_role_ids, f"{role.urn} grants a tenant-wide mail permission"
    app = registered(pulumi_mocks, APP)[0]
    requested = {a["id"] for r in app.inputs["requiredResourceAccesses"] for a in r["resourceAccesses"]}
    assert not requested & mail_role_ids, f"{app.urn} requests a tenant-wide mail permission"


def test_access_policy__program_run__one_app_role_assignment_per_application_permission(pulumi_mocks):
    run(lambda: build(tenant(scoping={"mode": "access-policy"})).application.id)
    roles = {r.name: r for r in registered(pulumi_mocks, ROLE)}
    assert sorted(roles) == ["t-consent-role-Mail.ReadWrite", "t-consent-role-Mail.Send"]
    send = roles["t-consent-role-Mail.Send"]
    assert send.inputs["appRoleId"] == catalog().require("Mail.Send", "application").id, send.urn
    assert send.inputs["resourceObjectId"], f"{send.urn} has no Graph service principal object id"


def test_tenant_wide__program_run__app_tagged_for_policies(pulumi_mocks):
    config = tenant(scoping={"mode": "tenant-wide", "tenantWideAcknowledgement": TENANT_WIDE_ACKNOWLEDGEMENT})
    run(lambda: build(config).application.id)
    app = registered(pulumi_mocks, APP)[0]
    assert "mailplane:scoping=tenant-wide" in app.inputs["tags"], app.urn


def test_delegated_scopes__program_run__one_grant_for_all_users_holding_every_scope(pulumi_mocks):
    config = tenant(
        presets=["delegated-graph-sync"],
        app={"displayName": "Sync", "redirectUris": ["https://sync.contoso.com/cb"]},
        mailboxes={},
    )
    run(lambda: build(config).application.id)
    (grant,) = registered(pulumi_mocks, GRANT)
    assert grant.inputs["claimValues"] == sorted(
        ["openid", "profile", "email", "User.Read", "offline_access", "Mail.Read", "Mail.Send"]
    ), grant.urn
    assert "userObjectId" not in grant.inputs, f"{grant.urn} must consent for all users"
    app = registered(pulumi_mocks, APP)[0]
    scope_ids = {a["id"] for r in app.inputs["requiredResourceAccesses"] for a in r["resourceAccesses"]}
    assert catalog().require("offline_access", "delegated").id in scope_ids, app.urn


def test_app_registration__program_run__single_tenant_owners_include_deployer_and_no_implicit_grant(pulumi_mocks):
    run(lambda: build(tenant()).application.id)
    app = registered(pulumi_mocks, APP)[0]
    assert app.inputs["signInAudience"] == "AzureADMyOrg", app.urn
    assert len(app.inputs["owners"]) == 2, f"{app.urn}: owners must be the declared owner plus the deployer"
    assert app.inputs["web"]["implicitGrant"] == {"accessTokenIssuanceEnabled": False, "idTokenIssuanceEnabled": False}


def test_children__program_run__parented_to_their_component_and_named_from_it(pulumi_mocks):
    run(lambda: build(tenant()).application.id)
    for resource in pulumi_mocks.recorded:
        if resource.type == "mailplane:mail_integration:MailIntegration":
            continue
        assert resource.parent, f"{resource.urn} has no parent"
        assert resource.name.startswith("t"), f"{resource.urn} is not named from its component"


@pytest.mark.usefixtures("pulumi_mocks")
@pulumi.runtime.test
def test_rotating_secret__program_run__active_secret_output_is_secret():
    integration = build(tenant())

    async def check():
        assert await integration.client_secret.active_secret.is_secret(), "the active client secret must be secret"

    return pulumi.Output.from_input(check())


def test_rotating_secret__program_run__two_slots_with_deterministic_end_dates(pulumi_mocks):
    run(lambda: build(tenant()).application.id)
    passwords = {r.name: r.inputs for r in registered(pulumi_mocks, PASSWORD)}
    assert passwords == {
        "t-secret-slot-a": {
            "applicationId": passwords["t-secret-slot-a"]["applicationId"],
            "displayName": "mailplane-a-gen0",
            "endDate": "2027-01-01T00:00:00Z",
            "rotateWhenChanged": {"generation": "0"},
        },
        "t-secret-slot-b": {
            "applicationId": passwords["t-secret-slot-b"]["applicationId"],
            "displayName": "mailplane-b-gen1",
            "endDate": "2027-07-01T00:00:00Z",
            "rotateWhenChanged": {"generation": "1"},
        },
    }
    assert passwords["t-secret-slot-a"]["applicationId"].startswith("/applications/")


def test_certificate__program_run__end_date_from_certificate(pulumi_mocks, self_signed_pem):
    config = tenant(credentials={"certificate": {}})
    run(lambda: build(config, certificate_pem=pulumi.Output.secret(self_signed_pem)).application.id)
    (certificate,) = registered(pulumi_mocks, "azuread:index/applicationCertificate:ApplicationCertificate")
    assert certificate.inputs["endDate"] == "2036-01-01T00:00:00Z", certificate.urn
    assert certificate.inputs["encoding"] == "pem"


def test_certificate_with_private_key__program_run__refused_with_reason(tmp_path, self_signed_pem):
    # A program that fails inside an apply leaves Pulumi's process-wide runtime unusable for later programs in the
    # same process, so this one runs in its own interpreter.
    pem_file = tmp_path / "cert.pem"
    pem_file.write_text(self_signed_pem + "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n")
    script = f"""
import pulumi
from tests.conftest import *  # noqa: F403 - puts the repository on sys.path
from mailplane.plan import OfflineTenantMocks, RecordingMonitor
from tests.test_components import build, tenant
mocks = OfflineTenantMocks()
pulumi.runtime.set_mocks(mocks, project="mailplane", stack="t", preview=False, monitor=RecordingMonitor(mocks))
pem = open({str(pem_file)!r}).read()
pulumi.runtime.test(lambda: build(tenant(credentials={{"certificate": {{}}}}), certificate_pem=pem).application.id)()
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode != 0
    assert (
        "reading the certificate in mailplane:certificatePem: the value contains a private key. Upload only the "
        "certificate" in result.stderr
    ), result.stderr[-2000:]


def test_pem_with_private_key__read__refused_without_echoing_it():
    with pytest.raises(ValueError, match="contains a private key") as caught:
        read_certificate("-----BEGIN PRIVATE KEY-----\nSECRETMATERIAL\n-----END PRIVATE KEY-----", today=TODAY)
    assert "SECRETMATERIAL" not in str(caught.value)


def test_expired_certificate__read__refused_with_date(self_signed_pem):
    with pytest.raises(ValueError, match="the certificate expired on 2036-01-01"):
        read_certificate(self_signed_pem, today=dt.date(2036, 1, 2))


@pytest.fixture
def self_signed_pem() -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailplane test")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2036, 1, 1, tzinfo=dt.UTC))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()
