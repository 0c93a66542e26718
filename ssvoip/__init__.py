"""The `ssvoip` command: one entry point for the codec and (later) calls and experiments."""
