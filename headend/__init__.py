"""The head-end: takes the terminals' MAC-signed reports over MQTT
(docs/reporting.md), stores each once (SQLite or PostgreSQL), imports the
sales office's ledger and reconciles sales against credits (docs/headend.md).
CPython only; nothing here runs on a terminal."""
