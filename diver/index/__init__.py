"""diver.index."""
