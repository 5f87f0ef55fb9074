"""Subcommands beyond check/recover, each registering itself with the CLI."""
