"""The hotline: customers call a support line; the desk answers, files tickets and pages the engineer on duty."""
