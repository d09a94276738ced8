"""SMS and WhatsApp through Twilio (see plugin.py for how accounts map to the channels)."""
