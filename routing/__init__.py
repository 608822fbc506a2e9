"""Pure call-routing decisions: rules + time + live snapshot -> route. No I/O here."""
