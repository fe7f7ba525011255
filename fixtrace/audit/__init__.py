"""Deployment audits: ledger, manifest, report."""
