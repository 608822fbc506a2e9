"""Call recordings: MixMonitor files, transcoding, retention, access (later issues)."""
