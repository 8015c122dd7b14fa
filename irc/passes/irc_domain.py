"""Level 3: fusions into irc's own op domain (filled in below)."""
