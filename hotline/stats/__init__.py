"""Statistics: the answer rate per site, queue, shift slot and counsellor (docs/statistics.md).

`figures` and `periods` are pure (data in, figures out); `storage` holds the SQL, `services`
the use case, `http`/`schemas`/`openapi` the API at /api/stats/….
"""
