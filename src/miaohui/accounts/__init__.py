"""Accounts: people, roles, passwords and server-side sessions."""
