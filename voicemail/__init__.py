"""Voicemail: messages, transcription, keyword scan, next-day callbacks (issue 5)."""
