"""Domain model, storage, ingest, events, outbox: the core every other package builds on."""
