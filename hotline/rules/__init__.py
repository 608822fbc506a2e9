"""Routing rules that administrators edit: versions, publishing, the calendar, caller flags."""
