"""Help screens that never cut a command's summary short.

click shortens each command's first docstring sentence to what fits on one
line and ends it with "..."; annot's :class:`Group` lists the whole first
sentence, wrapped, so no summary in ``annot --help`` stops mid-way.
"""

from __future__ import annotations

import click


class Group(click.Group):
    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
