"""zhiban (值班): the 7x24 support and incident desk for RTC vendors."""
