"""Sans-I/O call protocol: packets, control messages, statistics, playout buffer.

Pure code driven by an injected clock; no sockets, no asyncio. Issue #4 adds the rate
controller's inputs (feedback) to the transmitter and receiver that drive it.
"""
