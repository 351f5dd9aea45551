"""The audit trail: one DynamoDB item per CloudTrail event id, written exactly once.

Table (template.yaml ``AuditTable``): hash key ``event_id``; GSIs, each sorted by ``time_key``
(``<eventTime>#<event_id>``, so time order is key order): ``by-secret`` (secret_name),
``by-principal`` (principal_name), ``by-day`` (day, for time windows across all secrets) and
``by-rule-0/1/2`` (rule_0..rule_2). A GSI key must be one scalar, and an event can fire several
rules, so the first three findings (by severity) each get a slot.

Every item is bounded in bytes before it is written (``shared.bounds``): keys within DynamoDB's
key limits (long ones end with a hash), free text capped, long numbers as text.

Alerts (see docs/delivery.md). An alerting record carries ``alerts``: rule id → the life of that
alert::

    {"state": "claimed", "alert_id": "…", "owner": "<attempt token>", "invocation": "<request id>",
     "deadline": <epoch ms>}

- ``claimed``: the invocation holding ``owner`` publishes it; its claim ends at ``deadline`` (the
  end of that invocation), after which any later delivery of the event may claim it again;
- ``retry``: handed back (publishing failed, or the invocation ran short of time): any
  delivery may claim it;
- ``sent``: SNS accepted it (``sent_at``, ``message_id``);
- ``suppressed``: recorded without alerting (a replay without --notify).

The audit item is written with one conditional put (``attribute_not_exists``); every change of
an alert's state is a conditional update, so two deliveries never both own one alert.
"""
