"""The gated workflow: stage machine, gates, assignment, review, rework, audit trail."""
