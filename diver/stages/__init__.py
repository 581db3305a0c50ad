"""diver.stages."""
