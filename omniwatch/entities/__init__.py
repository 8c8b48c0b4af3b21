"""Entities of the vc track (companies keyed by SEC CIK) and the links from events to them."""

from omniwatch.entities.resolution import (
    EntityIndex,
    Link,
    build_entities,
    link_events,
    make_entity_id,
    normalize_cik,
    normalize_name,
)

__all__ = ["EntityIndex", "Link", "build_entities", "link_events", "make_entity_id", "normalize_cik",
           "normalize_name"]
