"""mailplane: declarative, safe Microsoft 365 mail integrations.

The runtime half: integration config validation, sends and imports through Microsoft Graph, the Exchange Online
admin client that the Pulumi dynamic providers use, and the ``mailplane`` command. The pure decision functions
(tenant config validation, grants, secret rotation) live here too, so the Pulumi components, the policy pack, the
offline plan and the audit all share them.
"""

__version__ = "0.1.0"
