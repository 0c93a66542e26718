"""Asyncio transmitter: audio source -> streaming encoder -> packets -> transport."""
