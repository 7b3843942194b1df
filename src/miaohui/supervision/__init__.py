"""Supervision: risk cases, the supervisor queue, guardian mode, audited
transcript access, whispers, joining and taking over conversations."""
