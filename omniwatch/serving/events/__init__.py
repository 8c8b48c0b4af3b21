"""Event ingestion and entities."""
