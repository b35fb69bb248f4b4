"""Customer apps: the vendor's customers' RTC apps, each with an ingest key for quality telemetry."""
