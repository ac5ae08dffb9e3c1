"""The Matrix adapter: the only code that touches matrix-nio. Everything else sees `bot.matrix.events`."""
