"""Calls: the journal of every call (AGI and AMI write, the API reads)."""
