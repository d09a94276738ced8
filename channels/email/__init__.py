"""The email channel: IMAP in, SMTP out, through ingest and the outbox."""
