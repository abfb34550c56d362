"""Outside services: Evolution API (client + simulator) and the LLM (OpenAI + offline generator)."""
