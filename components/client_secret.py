"""Client secrets that rotate in two overlapping slots (see ``mailplane.rotation``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pulumi
import pulumi_azuread as azuread

from mailplane.rotation import SecretGeneration, secret_generations

__all__ = ["RotatingClientSecret", "RotatingClientSecretArgs"]


@dataclass
class RotatingClientSecretArgs:
    """Inputs of :class:`RotatingClientSecret`."""

    application_id: pulumi.Input[str]
    """Resource id of the app registration (``Application.id``, ``/applications/<object id>``), not the client id."""

    anchor_date: dt.date
    """Day the schedule starts. Keep it fixed: changing it moves every boundary and replaces both secrets."""

    today: dt.date
    """The day to compute the slots for (the deployment's date; frozen in tests and plans)."""

    rotation_period_months: int = 6
    """Months between new secrets, 1-24 (default 6). Each secret lives two periods (default 12 months)."""


class RotatingClientSecret(pulumi.ComponentResource):
    """Two ``ApplicationPassword`` slots: a new secret every period, each valid for two periods.

    Only a period boundary changes a slot's inputs (its generation, display name and end date), so ``pulumi up``
    between boundaries changes nothing, and at a boundary only the slot holding the expired secret is replaced.
    Run ``pulumi up`` at least once per period (the scheduled pipeline does it weekly).
    """

    generations: list[SecretGeneration]
    passwords: dict[str, azuread.ApplicationPassword]
    active_secret: pulumi.Output[str]
    active_key_id: pulumi.Output[str]
    active_expires: str
    expiries: dict[str, str]

    def __init__(self, name: str, args: RotatingClientSecretArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Children: ``<name>-slot-a`` and (from the second period on) ``<name>-slot-b``."""
        super().__init__("mailplane:client_secret:RotatingClientSecret", name, None, opts)
        self.generations = secret_generations(args.anchor_date, args.rotation_period_months, args.today)
        self.passwords = {}
        for generation in self.generations:
            self.passwords[generation.slot] = azuread.ApplicationPassword(
                f"{name}-slot-{generation.slot}",
                application_id=args.application_id,
                display_name=generation.display_name,
                end_date=generation.end_date_rfc3339,
                # The generation is the only rotation trigger: it changes at period boundaries and nowhere else.
                rotate_when_changed={"generation": str(generation.generation)},
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["value"]),
            )
        active = self.generations[0]
        self.active_secret = pulumi.Output.secret(self.passwords[active.slot].value)
        self.active_key_id = self.passwords[active.slot].key_id
        self.active_expires = active.end_date_rfc3339
        self.expiries = {f"client-secret-{g.slot}": g.end_date_rfc3339 for g in self.generations}
        self.register_outputs(
            {
                "active_secret": self.active_secret,
                "active_key_id": self.active_key_id,
                "active_expires": self.active_expires,
                "expiries": self.expiries,
            }
        )
