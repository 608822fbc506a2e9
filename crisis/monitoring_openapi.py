"""The supervisor monitoring endpoints in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from crisis.monitoring import MonitoredCallList, MonitorIn, MonitorOut
from hotline.calls.schemas import ErrorOut

OUTPUTS: tuple[type[BaseModel], ...] = (MonitorOut, MonitoredCallList)
INPUTS: tuple[type[BaseModel], ...] = (MonitorIn,)

Schema = Callable[[type[BaseModel], str], dict[str, Any]]


def monitoring_paths(json: Schema, body: Callable[[type[BaseModel]], dict[str, Any]]
                     ) -> dict[str, Any]:
    common = {"401": json(ErrorOut, "missing or invalid bearer token"),
              "403": json(ErrorOut, "needs the role supervisor (admins too are refused; the "
                                    "refusal is audited)")}
    unreachable = {"503": json(ErrorOut, "Asterisk cannot be reached")}
    return {
        "/api/calls/{call_id}/monitor": {"post": {
            "summary": "Listen to, whisper into (the counsellor hears you, the caller does "
                       "not) or barge into (both hear you) a live call: Asterisk rings your "
                       "softphone (endpoint) or a phone through the carrier (number), shown "
                       "as \"监听 <call id>\" (密语, 强插), and spies on the counsellor's "
                       "channel when you answer (ChanSpy, quiet, ends with the call). "
                       "Supervisor only; every request is audited (call.monitor), refused "
                       "ones too",
            "parameters": [{"name": "call_id", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "requestBody": body(MonitorIn),
            "responses": {
                "202": json(MonitorOut, "Asterisk is ringing the phone"),
                "400": json(ErrorOut, "the body is not JSON"), **common,
                "404": json(ErrorOut, "no such call, or it has ended"),
                "409": json(ErrorOut, "nothing to monitor (the caller is in the menu, waiting "
                                      "or on hold, or talks to no counsellor), the call is on "
                                      "another node, or Asterisk refused to ring the phone"),
                "422": json(ErrorOut, "invalid body (a mode, and exactly one of endpoint or "
                                      "number), an endpoint no active softphone has, or the "
                                      "counsellor's own endpoint"),
                "502": json(ErrorOut, "Asterisk did not confirm: the phone may still ring"),
                **unreachable}}},
        "/api/monitoring/calls": {"get": {
            "summary": "The calls a supervisor can monitor now: a caller talking to a "
                       "counsellor on this node, read live from Asterisk, with who is "
                       "spying on each (supervisor only)",
            "responses": {"200": json(MonitoredCallList, "live calls, longest first"),
                          **common, **unreachable}}},
    }
