"""The prompt library: named recordings of each site, in versions.

An administrator uploads a WAV or MP3 (or has espeak-ng speak a text); each upload is a new
version converted to 8 kHz mono 16-bit WAV under Asterisk's sounds directory as
``hotline/sites/<site>/<name>-v<version>``, so a rule set pinned to an older version keeps
playing it.

- ``audio``: checking and converting audio (pydub, ffmpeg, espeak-ng); blocking, run off the
  event loop.
- ``storage``: where files live (the sounds directory, kept originals) and database queries.
- ``services``: the use cases (upload, generate, download) and what the rules publisher asks.
- ``schemas`` and ``http``: the admin API under ``/api/sites/{site}/prompts``.
"""
