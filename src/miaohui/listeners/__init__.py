"""Listeners (倾听师): public profiles, approval and availability."""
