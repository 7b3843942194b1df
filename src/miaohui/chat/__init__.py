"""Chat: conversations, durable sequenced messages and the realtime gateway."""
