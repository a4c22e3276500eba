"""``--plugin`` for the commands that build heads, losses or datasets, and ``vtrbench heads`` / ``losses``."""

from __future__ import annotations

from typing import Any

import click

from vtrbench.cli._app import cli

# The commands that take --plugin; one place adds it (see add_plugin_option) so that every
# such command loads plugins the same way, before any of its other options are used.
PLUGIN_COMMANDS = ("extract", "train", "eval", "ablate", "demo", "heads", "losses")


def _load(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> None:
    if value:
        from vtrbench.plugins import load_plugins

        load_plugins(list(value))


def plugin_option() -> click.Option:
    return click.Option(
        ["--plugin"],
        multiple=True,
        expose_value=False,
        is_eager=True,
        callback=_load,
        metavar="FILE.py|MODULE",
        help="Load heads/losses/datasets from a plugin file or module first (repeatable).",
    )


def add_plugin_option(group: click.Group) -> None:
    commands = [group.commands.get(name) for name in PLUGIN_COMMANDS]
    datasets = group.commands.get("datasets")
    if isinstance(datasets, click.Group):
        commands += list(datasets.commands.values())
    for command in commands:
        if command is not None and not any(p.name == "plugin" for p in command.params):
            command.params.insert(0, plugin_option())


def origin_text(origin: dict[str, Any]) -> str:
    """Where a registered name comes from: ``built in``, or the plugin's kind, name, version, source."""
    if origin.get("kind") == "builtin":
        return "built in"
    version = f" {origin['version']}" if origin.get("version") else ""
    sha = f" sha256:{origin['sha256'][:12]}" if origin.get("sha256") else ""
    return f"{origin.get('kind')} {origin.get('name')}{version} ({origin.get('source')}){sha}"


def print_registry(kind: str) -> None:
    """One line per name (pipe-friendly: the name first, then two spaces and where it comes from)."""
    # from the registry itself: vtrbench.plugins imports torch (its dry-run checks), which a listing
    # must not cost (tests/top/test_cli.py::test_help_does_not_import_heavy_modules)
    from vtrbench.registry import describe_entry_point, entry_point_names, name_problem, registry_of

    reg = registry_of(kind)
    for name in reg.available():
        if name in reg.names():
            where = origin_text(reg.origin(name))
        else:  # installed but not imported: listing must not run plugin code
            origin = describe_entry_point(reg.entry_point_group, name) or {}
            where = origin_text(origin) + " (not loaded yet)"
        click.echo(f"{name}  {where}".rstrip())
    # Installed entry points whose name can never be registered: listed once, said to be unusable,
    # so that a user sees why `--head NAME` will not find them (instead of a name that later fails).
    for name in entry_point_names(reg.entry_point_group):
        problem = name_problem(name)
        if problem is not None:
            origin = describe_entry_point(reg.entry_point_group, name) or {}
            click.echo(f"{name!r}  {origin_text(origin)} (unusable: a {kind} name {problem})")


@cli.command("heads")
def heads_cmd() -> None:
    """List the heads: built in, from --plugin files/modules, and installed plugins (entry points)."""
    print_registry("head")


@cli.command("losses")
def losses_cmd() -> None:
    """List the losses: built in, from --plugin files/modules, and installed plugins (entry points)."""
    print_registry("loss")
