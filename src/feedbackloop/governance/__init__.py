"""Governance: risk-tier policies, release gates and sign-offs, releases, the audit log,
provenance and case studies."""
