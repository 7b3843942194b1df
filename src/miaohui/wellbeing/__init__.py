"""Seeker wellbeing: spending budgets (service) and 我的倾诉习惯, the month's
pattern looked at with the seeker and gentle nudges toward people in their life (habits)."""
