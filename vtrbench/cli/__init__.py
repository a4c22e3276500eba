"""The ``vtrbench`` command line: parse -> frozen config -> one library call -> rich output.

One module per concern: ``_app`` (the group, consoles, shared parsing), ``plugin_cmds``
(--plugin on every command that builds heads, losses or datasets; heads, losses), ``extract_cmds``
(extract, synth), ``info_cmds`` (datasets, models, inspect), ``options`` (train/ablate options ->
RunSpec), ``train_cmds`` (train, eval, ablate), ``report_cmds`` (report, demo) and ``search_cmds``
(search, browse).

Heavy imports (torch, open_clip, PyAV) happen inside the commands, so that
``vtrbench --help`` answers at once. ``main(argv)`` takes an argument list so tests
drive the real entry point.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from vtrbench.cli import (  # noqa: F401  (importing registers the commands)
    extract_cmds,
    info_cmds,
    plugin_cmds,
    report_cmds,
    search_cmds,
    train_cmds,
    tune_cmds,
)
from vtrbench.cli._app import FEATURES_ROOT, RESULTS_ROOT, cli, make_console
from vtrbench.cli.extract_cmds import default_cache_path
from vtrbench.cli.options import head_options_from_cli, run_spec_from_options
from vtrbench.errors import VtrbenchError

plugin_cmds.add_plugin_option(cli)
tune_cmds.install(cli)  # tune, and `heads/losses describe NAME` (search spaces)

__all__ = [
    "FEATURES_ROOT",
    "RESULTS_ROOT",
    "cli",
    "default_cache_path",
    "head_options_from_cli",
    "main",
    "run_spec_from_options",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print one line (no traceback) and return 2."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="vtrbench", standalone_mode=False)
    except VtrbenchError as e:
        from rich.markup import escape

        # Escaped: a message naming 'vtrbench[plot]' or a label such as camoe[...] must print as is;
        # soft_wrap: one line however narrow the terminal (the console would otherwise break it).
        # printable: a path or value holding ESC or BEL is shown escaped, never sent to the terminal
        from vtrbench.io import printable

        make_console().print(
            f"[bold red]error:[/] {escape(printable(str(e)))}", highlight=False, soft_wrap=True
        )
        return 2
    except click.exceptions.Abort:
        make_console().print("aborted")
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
