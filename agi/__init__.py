"""FastAGI server (panoramisk) and the classic AGI fallback: one module per AGI route."""
