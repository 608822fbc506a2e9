"""Crisis alerts, the one-key 110 bridge, incidents and deadlines (issue 6)."""
