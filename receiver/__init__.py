"""Asyncio receiver: transport -> playout buffer -> streaming decoder -> sink."""
