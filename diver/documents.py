"""Kept for the earlier documented import ``from diver.documents import make_document``; documents live
in ``diver.text.documents``."""

from diver.text.documents import Document, make_document

__all__ = ["Document", "make_document"]
