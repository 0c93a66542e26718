"""Sans-I/O call protocol: packets, control messages, statistics, playout buffer, rate control.

Pure code driven by an injected clock; no sockets, no asyncio. Built by issue #4.
"""
