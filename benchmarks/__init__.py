"""Performance harnesses: they print figures side by side; nothing here is a timed test."""
