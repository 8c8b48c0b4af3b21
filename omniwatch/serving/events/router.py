"""Event ingestion and entities."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Security

from omniwatch.serving.auth import require_api_key
from omniwatch.serving.deps import Services, get_services
from omniwatch.serving.errors import documented, not_found
from omniwatch.serving.events import service as store
from omniwatch.serving.events.schemas import EntityResponse, IngestRequest, IngestResponse

router = APIRouter(tags=["events"])


@router.post("/ingest/events", response_model=IngestResponse, responses=documented(401, 403, 422),
             dependencies=[Security(require_api_key)])
def ingest(body: IngestRequest, services: Services = Depends(get_services)) -> dict:
    """Validate and store events; idempotent by (source, source_id): sending one again updates
    it, never duplicates it. ``entity_ids`` link the event to known entities. ``available_time``
    is stored as the later of the client's value and receipt; the pipeline's sources (edgar,
    gdelt, rss) are refused (403 ``pipeline_source``); the pipeline's event checks run first
    (422 ``blocked_by_data_quality`` naming the check, nothing stored)."""
    return store.ingest(services.database_url, body.events)


@router.get("/entities/{entity_id}", response_model=EntityResponse, responses=documented(401, 404, 422))
def entity(entity_id: Annotated[str, Path(description="entity_id; an unknown one is 404 whatever its format")],
           limit: Annotated[int, Query(ge=1, le=500)] = 100, services: Services = Depends(get_services)) -> dict:
    """An entity and its linked events (event_links), newest first."""
    found = store.entity(services.database_url, entity_id, limit)
    if found is None:
        raise not_found("entity", entity_id)
    return found
