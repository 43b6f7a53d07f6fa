"""The long-running daemon: triggers, one pass at a time, signals, systemd, HTTP."""
