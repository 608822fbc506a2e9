"""hotline12355: shared core — config, database, live state, CLI, admin web and wiring."""
