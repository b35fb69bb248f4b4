"""One module per channel type; each sends one message to one destination."""
