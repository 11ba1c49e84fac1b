"""The shapes every layer of Dangol agrees on, and nothing else.

``contracts.messages`` holds what a message is on its way in and out
(:class:`InboundMessage`, :class:`OutboundMessage`, :class:`Attachment` ...);
``contracts.http_errors`` holds the one JSON error body every HTTP answer
uses.  This package imports nothing else of Dangol's, so channels, the
engine, the API and the console can all depend on it without depending on
each other.
"""
