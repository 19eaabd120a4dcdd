"""Delivery reports of a program: one JSON document and a self-contained HTML page."""
