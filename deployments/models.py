"""Environments, builds, rollouts, promotions and approvals live here."""
