"""Composition root: load and validate the tenant config, declare the MailIntegration, export the stack outputs."""

import pulumi

from components import config
from components.mail_integration import MailIntegration, MailIntegrationArgs

tenant = config.load_tenant_config()
if tenant.scoping_mode == "tenant-wide":
    pulumi.log.warn(
        f"{config.stack_file()}: scoping mode is tenant-wide: this app can read and send as EVERY mailbox in "
        f"{tenant.primary_domain}. Switch to mode 'rbac' to limit it to the declared mailboxes."
    )

integration = MailIntegration(
    pulumi.get_stack(),
    MailIntegrationArgs(
        config=tenant,
        today=config.today(),
        certificate_pem=config.certificate_pem(tenant.certificate.pem_config_key) if tenant.certificate else None,
    ),
)

pulumi.export("tenantId", tenant.tenant_id)
pulumi.export("clientId", integration.application.client_id)
pulumi.export("servicePrincipalObjectId", integration.service_principal.object_id)
if integration.client_secret:
    pulumi.export("activeClientSecret", integration.client_secret.active_secret)
    pulumi.export("activeClientSecretKeyId", integration.client_secret.active_key_id)
pulumi.export("credentialExpiries", integration.credential_expiries)
pulumi.export("grants", integration.grants.to_dict())
