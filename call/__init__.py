"""A call: one side\x27s session (outgoing and incoming halves), listening, dialing, the console."""
