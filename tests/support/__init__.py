"""What the tests share that is not a test: fakes behind the bot's ports, harnesses, synthetic people."""
