"""Ledger schema revisions, applied in order by ``Ledger`` on open."""
