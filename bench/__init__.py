"""Benchmarks: they print JSON and the README's tables; they are never timed tests."""
