"""Reference codecs we measure ourselves against (Opus through PyAV's libopus)."""
