"""Prompt templates (text files) used by the LLM stages; loaded by ``diver.llm.prompts``."""
