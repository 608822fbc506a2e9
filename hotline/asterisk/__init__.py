"""Asterisk: the sandboxed Asterisk 22, configuration rendering and prompts."""
