"""Counsellors, shifts, log in / out and pauses: who answers which queue, now."""
