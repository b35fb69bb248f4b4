"""zhiban (值班): the 7x24 support and incident desk for RTC vendors."""

__version__ = "0.1.0"
