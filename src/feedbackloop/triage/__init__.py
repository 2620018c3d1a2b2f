"""Triage: routing feedback (project rules, a classifier trained on routed items, a human
queue for low confidence), escalation, themes, findings and their priorities."""
