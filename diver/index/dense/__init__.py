"""diver.index.dense."""
