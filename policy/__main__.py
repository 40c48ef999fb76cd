"""Entry point of the policy pack. PolicyPack(...) starts the analyzer server and never returns, so only run it here."""

from mail_policies import build_policies
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name="mailplane-governance",
    display_name="mailplane governance",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=build_policies(),
)
