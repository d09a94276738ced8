"""Channel adapters: provider input to core.ingest.InboundEvent, outbox items to providers."""
