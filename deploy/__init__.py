"""Launchers: the `pocketkube` command and its subcommands."""
