"""Pulumi dynamic providers for Exchange Online objects, one module per object (see each module's docstring)."""

from components.exchange.access_policy import ApplicationAccessPolicy
from components.exchange.mailbox import Mailbox
from components.exchange.mailbox_member import MailboxMember
from components.exchange.management_scope import ManagementScope
from components.exchange.role_assignment import ManagementRoleAssignment
from components.exchange.security_group import MailSecurityGroup
from components.exchange.service_principal import ServicePrincipalPointer
from components.exchange.verification import ScopeVerification

__all__ = [
    "ApplicationAccessPolicy",
    "MailSecurityGroup",
    "Mailbox",
    "MailboxMember",
    "ManagementRoleAssignment",
    "ManagementScope",
    "ScopeVerification",
    "ServicePrincipalPointer",
]
