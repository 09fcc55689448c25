"""The web example: a FastAPI app that embeds a long-lived flink-agents-async runtime."""
