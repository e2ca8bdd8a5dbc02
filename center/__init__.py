"""The regional 112 center: every gateway's feed, stored once, checked, counted and shown.

Data flow (folders follow it)::

    MQTT (shared subscription) ─▶ ingest/session.py ─▶ ingest/writer.py
        ─▶ ingest/validate.py (contract schemas) ─▶ ingest/store.py ─▶ storage/ (SQLAlchemy Core:
        PostgreSQL or SQLite) ─▶ completeness.py (gaps, alarms) ─▶ stats.py ─▶ api/ (FastAPI,
        server-sent events) ─▶ web/ (the dashboard); desk.py takes the call-taker's
        classification and escalations and sends them back to the gateway.

``center.service`` wires one worker; ``edge112 center --config FILE`` runs it.
See ``docs/center.md``.
"""
