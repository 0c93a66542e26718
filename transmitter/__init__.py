"""Asyncio transmitter: audio source -> streaming encoder -> packets -> transport (issue #4)."""
