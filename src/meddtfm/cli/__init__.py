"""The ``meddtfm`` command line."""
