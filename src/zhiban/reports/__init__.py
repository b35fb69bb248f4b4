"""Support reports: the figures that prove 7x24 support is real, the customer SLA report and service credits."""
