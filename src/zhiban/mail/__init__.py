"""Ticket e-mail both ways: an inbound SMTP listener that files and threads tickets, and outbound replies."""
