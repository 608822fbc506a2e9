"""The backend's call id, computed the same way everywhere (pure: no database needed).

The FastAGI server, the AMI listener and the classic AGI fallback (which runs inside
Asterisk's host without SQLAlchemy) all derive a call's id from Asterisk's ``linkedid``
and the node name, so they agree without a lookup.
"""

from __future__ import annotations

import functools
import uuid

CALL_ID_NAMESPACE = uuid.UUID("6f1c1d2e-12d3-5355-9a55-123551235500")


@functools.lru_cache(maxsize=8192)
def call_id_for(node: str, linkedid: str) -> str:
    """The backend's call id, from Asterisk's linkedid: AGI and AMI agree without a lookup."""
    return uuid.uuid5(CALL_ID_NAMESPACE, f"{node}/{linkedid}").hex
