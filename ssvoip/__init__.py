"""The `ssvoip` command: one entry point for the codec, calls and experiments."""
