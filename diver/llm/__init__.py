"""diver.llm."""
