"""The voicemail, callback and crisis keyword endpoints in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from hotline.calls.schemas import ErrorOut
from voicemail.schemas import (
    AssignIn,
    AudioQuery,
    CallbackList,
    CallbackOut,
    CrisisKeywordList,
    CrisisKeywordsIn,
    OutcomeIn,
    VoicemailList,
    VoicemailOut,
    VoicemailQuery,
    WorklistQuery,
)

OUTPUTS: tuple[type[BaseModel], ...] = (VoicemailList, VoicemailOut, CallbackList, CallbackOut,
                                        CrisisKeywordList)
INPUTS: tuple[type[BaseModel], ...] = (AssignIn, OutcomeIn, CrisisKeywordsIn)

Schema = Callable[[type[BaseModel], str], dict[str, Any]]


def voicemail_paths(json: Schema, body: Callable[[type[BaseModel]], dict[str, Any]]
                    ) -> dict[str, Any]:
    def path(name: str) -> dict[str, Any]:
        return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}

    def query(model: type[BaseModel]) -> list[dict[str, Any]]:
        properties = model.model_json_schema()["properties"]
        return [{"name": name, "in": "query", "required": False,
                 "description": schema.pop("description", ""), "schema": schema}
                for name, schema in properties.items()]

    readers = "admin, supervisor, duty officer, counsellor"
    common = {"401": json(ErrorOut, "missing or invalid bearer token"),
              "403": json(ErrorOut, "needs the role admin, supervisor, duty_officer or "
                                    "counsellor")}
    bad_query = {"400": json(ErrorOut, "invalid query (detail names each parameter)")}
    bad_body = {"400": json(ErrorOut, "the body is not JSON"),
                "422": json(ErrorOut, "invalid body (detail names each field and the reason)")}
    no_message = {"404": json(ErrorOut, "no such message")}
    no_task = {"404": json(ErrorOut, "no such callback task")}
    task = json(CallbackOut, "the callback task after the change")
    keywords = json(CrisisKeywordList, "the crisis keyword list")
    audio = {"schema": {"type": "string", "format": "binary"}}
    return {
        "/api/voicemail/messages": {"get": {
            "summary": f"Voicemail messages, newest first, each with its callback ({readers})",
            "parameters": query(VoicemailQuery),
            "responses": {"200": json(VoicemailList, "messages"), **bad_query, **common}}},
        "/api/voicemail/messages/{message_id}": {"get": {
            "summary": "One message: audio state, transcript or why there is none, keyword "
                       f"hits, and its callback task ({readers})",
            "parameters": [path("message_id")],
            "responses": {"200": json(VoicemailOut, "the message"), **common, **no_message}}},
        "/api/voicemail/messages/{message_id}/audio": {"get": {
            "summary": "Download a message's audio: the loudness-normalised web copy (Ogg "
                       "Opus), or the original WAV with ?original=true or when there is no "
                       f"web copy ({readers}; every download is audited)",
            "parameters": [path("message_id"), *query(AudioQuery)],
            "responses": {"200": {"description": "the recording, as an attachment",
                                  "content": {"audio/ogg": audio, "audio/wav": audio}},
                          **bad_query, **common,
                          "404": json(ErrorOut, "no such message, or its file is missing")}}},
        "/api/callbacks": {"get": {
            "summary": "The callback worklist: urgent first, then messages no keyword scan "
                       f"has cleared (untranscribed), then the oldest ({readers})",
            "parameters": query(WorklistQuery),
            "responses": {"200": json(CallbackList, "callback tasks in worklist order"),
                          **bad_query, **common}}},
        "/api/callbacks/{task_id}/assign": {"post": {
            "summary": f"Assign a callback to a counsellor, or to nobody with null ({readers}; "
                       "audited)",
            "parameters": [path("task_id")], "requestBody": body(AssignIn),
            "responses": {"200": task, **bad_body, **common, **no_task}}},
        "/api/callbacks/{task_id}/outcome": {"post": {
            "summary": "Record a callback's outcome by hand (a call from a desk phone): "
                       "reached closes it as done; invalid_number and not_safe close it; the "
                       f"others leave it open ({readers}; audited)",
            "parameters": [path("task_id")], "requestBody": body(OutcomeIn),
            "responses": {"200": task, **bad_body, **common, **no_task}}},
        "/api/crisis-keywords": {
            "get": {"summary": "The crisis keyword list voicemail transcripts are scanned with "
                               f"(the built-in defaults until an admin saves one; {readers})",
                    "responses": {"200": keywords, **common}},
            "put": {"summary": "Replace the whole list (admin; audited). A list with problems "
                               "(a one-character phrase, a phrase listed twice, an exclusion "
                               "that contains neither the term nor a synonym) is refused with "
                               "422, detail listing each {entry, reason}; nothing is changed",
                    "requestBody": body(CrisisKeywordsIn),
                    "responses": {"200": keywords, **bad_body,
                                  "401": common["401"],
                                  "403": json(ErrorOut, "needs the role admin")}},
        },
    }
