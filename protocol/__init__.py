"""Sans-I/O call protocol: packets, control messages, feedback, rate control, playout buffer,
statistics. Pure code driven by an injected clock; no sockets, no asyncio."""
