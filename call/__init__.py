"""A call: one side's session (outgoing and incoming halves), listening, dialing, the console."""
