"""Taskless: background and scheduled jobs for Python web apps, delivered as signed HTTP requests."""

__version__ = "0.1.0"
