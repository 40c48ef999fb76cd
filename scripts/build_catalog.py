"""Build mailplane's permission catalog from Microsoft's published Graph permission data.

The product needs permission facts at run time (names, application/delegated, privilege level, admin-consent flag,
ids for offline rendering) but must not depend on the development-only ``shared/`` folder. This script distills
``shared/data/graph-permissions/{permissions,provisioningInfo}.json`` into
``mailplane/catalog/graph_permissions.json``. It keeps facts only (no descriptions).

Usage: python scripts/build_catalog.py [--data DIR] [--out FILE] [--check]
``--check`` exits 1 when the committed catalog differs from what the data produces.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "graph-permissions"
DEFAULT_OUT = ROOT / "mailplane" / "catalog" / "graph_permissions.json"

MICROSOFT_GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
EXCHANGE_ONLINE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
AZURE_AD_GRAPH_APP_ID = "00000002-0000-0000-c000-000000000000"
GRAPH_RESOURCE_TAGS = ("", MICROSOFT_GRAPH_APP_ID, AZURE_AD_GRAPH_APP_ID)

# The OpenID Connect scopes are ordinary delegated scopes of the Microsoft Graph service principal, but they are not
# in permissions.json; their ids are stated in the data's SOURCE.md.
OIDC_SCOPES = {
    "offline_access": "7427e0e9-2fba-42fe-b0c0-848c9e6a8182",
    "openid": "37f7f235-527c-4136-accd-4a02d197296e",
    "profile": "14dad69e-099b-42c9-810b-d002981feec1",
    "email": "64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0",
}
# Exchange.ManageAsApp belongs to "Office 365 Exchange Online", not Graph (SOURCE.md). The deployer identity needs it.
EXCHANGE_PERMISSIONS = {
    "Exchange.ManageAsApp": {
        "application": {"id": "dc50a0fb-09a3-484d-be87-e023b12c6440", "privilegeLevel": 4, "adminConsent": True},
    },
}

SCHEME_TO_TYPE = {"Application": "application", "DelegatedWork": "delegated"}


def build(data_dir: Path) -> dict:
    """Return the catalog document built from the two Microsoft data files in ``data_dir``."""
    permissions = json.loads((data_dir / "permissions.json").read_text(encoding="utf-8"))["permissions"]
    deployments = json.loads((data_dir / "provisioningInfo.json").read_text(encoding="utf-8"))["permissionDeployments"]

    graph: dict[str, dict] = {}
    for name, entry in sorted(permissions.items()):
        ids = {
            SCHEME_TO_TYPE[d["scheme"]]: d
            for d in deployments.get(name, [])
            if d.get("environment") == "public"
            and d.get("scheme") in SCHEME_TO_TYPE
            and d.get("isEnabled", True)
            and d.get("id")
            # Entries tagged with another resource app are that app's permissions. The directory permissions that
            # Microsoft Graph inherited from Azure AD Graph keep that tag but carry the Graph ids.
            and d.get("resourceAppId", "") in GRAPH_RESOURCE_TAGS
        }
        kinds: dict[str, dict] = {}
        for scheme, facts in entry.get("schemes", {}).items():
            kind = SCHEME_TO_TYPE.get(scheme)
            if kind is None or kind not in ids:
                continue  # No id in the commercial cloud: not grantable there.
            kinds[kind] = {
                "id": ids[kind]["id"],
                "privilegeLevel": int(facts.get("privilegeLevel", 0)),
                "adminConsent": bool(facts.get("requiresAdminConsent", False)),
                "hidden": bool(ids[kind].get("isHidden", False)),
            }
        if kinds:
            graph[name] = kinds
    for name, scope_id in OIDC_SCOPES.items():
        graph[name] = {"delegated": {"id": scope_id, "privilegeLevel": 1, "adminConsent": False, "hidden": False}}

    return {
        "about": "Facts distilled from microsoftgraph/microsoft-graph-devx-content permissions data by "
        "scripts/build_catalog.py; do not edit by hand.",
        "resources": {
            "microsoftGraph": {"appId": MICROSOFT_GRAPH_APP_ID, "permissions": dict(sorted(graph.items()))},
            "exchangeOnline": {"appId": EXCHANGE_ONLINE_APP_ID, "permissions": EXCHANGE_PERMISSIONS},
        },
    }


def render(catalog: dict) -> str:
    """Serialize deterministically, one permission a line, so diffs of the catalog stay reviewable."""
    return json.dumps(catalog, indent=1, sort_keys=False, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if not (args.data / "permissions.json").is_file():
        print(f"building the permission catalog: {args.data}/permissions.json not found. Pass --data DIR.")
        return 2
    text = render(build(args.data))
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} is stale. Run: python scripts/build_catalog.py")
            return 1
        print(f"{args.out} is up to date.")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    count = len(build(args.data)["resources"]["microsoftGraph"]["permissions"])
    print(f"wrote {args.out} ({count} Graph permissions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
