"""Subcommands of the ``recallwatch`` CLI, one module each with ``add_parser`` and ``run``."""
