"""Bootstrap program: declare the GitOps deployer identity for one tenant (run once, by a directory administrator).

The administrator who runs it needs Privileged Role Administrator (for the Exchange Administrator assignment) and
Cloud Application Administrator or Global Administrator (to consent the app roles). The outputs go into the GitHub
environment as variables: AZURE_CLIENT_ID and AZURE_TENANT_ID (no secret exists).
"""

import pulumi
from deployer_identity import DeployerIdentity, DeployerIdentityArgs

config = pulumi.Config()
tenant_id = config.require("tenantId")
deployer = DeployerIdentity(
    "mailplane-deployer",
    DeployerIdentityArgs(
        github_repository=config.require("githubRepository"),
        github_environments=config.get_object("githubEnvironments") or ["preview", "production"],
        display_name=config.get("displayName") or "mailplane deployer",
        owners=config.get_object("owners") or [],
    ),
)

pulumi.export("AZURE_TENANT_ID", tenant_id)
pulumi.export("AZURE_CLIENT_ID", deployer.client_id)
pulumi.export("servicePrincipalObjectId", deployer.service_principal.object_id)
