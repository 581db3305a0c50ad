"""diver.index.lexical."""
