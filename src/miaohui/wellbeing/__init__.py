"""Seeker wellbeing: spending budgets (and, later, attachment nudges)."""
