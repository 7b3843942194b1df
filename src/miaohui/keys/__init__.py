"""Encryption keys: what is stored under which key, and moving it to the active one."""
