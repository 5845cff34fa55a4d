"""Credit signals: rules over the state the workers keep, and their episodes (issue 16)."""
