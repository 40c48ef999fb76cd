"""Options that several runtime commands share, spelled once so they read and behave the same everywhere."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["config_option", "graph_url_option"]

config_option = click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The integration config (JSON).",
)
"""``--config FILE``: the integration config, passed to the command as ``config_path``."""

graph_url_option = click.option(
    "--graph-url",
    envvar="MAILPLANE_GRAPH_URL",
    help="Graph base URL (default: $MAILPLANE_GRAPH_URL or the config's graph.baseUrl).",
)
"""``--graph-url URL``: where Graph requests go, passed to the command as ``graph_url``."""
