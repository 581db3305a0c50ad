"""diver.index.stores."""
