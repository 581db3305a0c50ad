"""diver.text."""
