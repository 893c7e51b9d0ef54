"""Cutover: move production LLM traffic from one model to another without breaking what users see.

This package is the SDK side and never imports Django.
"""

__version__ = "0.1.0"
