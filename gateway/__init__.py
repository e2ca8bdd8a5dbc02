"""edge112 gateway: typed events, call tracking, the durable outbox and the MQTT forwarder."""

__version__ = "0.1.0"
