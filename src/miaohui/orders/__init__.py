"""Offerings, orders and the measurable 秒回 contract (pricing, SLA, settlement)."""
