"""Status pages: current incidents with their updates, 90 days of history, uptime bars and an Atom feed."""
