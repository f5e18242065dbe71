"""Dead-letter services: record (on the ledger's signal), replay, resolve."""

import structlog
from django.db import transaction
from django.utils import timezone

from dlq.errors import AlreadyResolved, DeadLetterNotFound, NoteRequired
from dlq.models import DeadLetter, Resolution
from executions import dispatcher
from executions.models import Execution, TriggerSource
from executions.transitions import Actor, record_event

log = structlog.get_logger(__name__)


def record_dead_letter(sender, *, execution: Execution, reason: str, error_summary: str, **_):
    """Receiver of `execution_dead_lettered`: one DeadLetter row per dead-lettered execution."""
    DeadLetter.objects.get_or_create(
        execution=execution,
        defaults={
            "pipeline": execution.pipeline,
            "reason": reason,
            "error_summary": error_summary,
            "attempts": execution.attempt,
        },
    )
    log.warning("dead_letter.created", execution_id=str(execution.id), reason=reason)


def get_dead_letter(dead_letter_id) -> DeadLetter:
    try:
        return DeadLetter.objects.select_related("execution").get(pk=dead_letter_id)
    except (DeadLetter.DoesNotExist, ValueError):
        raise DeadLetterNotFound(f"Dead letter {dead_letter_id} does not exist.") from None


def replay(dead_letter_id, *, actor: Actor, note: str = "") -> DeadLetter:
    """Dispatch the dead execution again (parent set) and resolve the dead letter as replayed."""
    with transaction.atomic():
        letter = _lock_unresolved(dead_letter_id)
        old = letter.execution
        result = dispatcher.dispatch(
            old.pipeline,
            old.params,
            lane=old.lane,
            trigger_source=TriggerSource.REPLAY,
            created_by=actor.user,
            request_id=actor.request_id,
            parent=old,
            actor=actor,
        )
        _resolve(letter, Resolution.REPLAYED, actor, note, replay_execution=result.execution)
        record_event(
            old.id,
            kind="replayed",
            actor=actor,
            data={"dead_letter_id": letter.pk, "new_execution_id": str(result.execution.id)},
        )
    return letter


def resolve(dead_letter_id, *, resolution: str, note: str, actor: Actor) -> DeadLetter:
    """Close a dead letter without replaying it; a note saying why is required."""
    if not (note or "").strip():
        raise NoteRequired(
            "A note is required to resolve a dead letter.", details={"note": ["Required."]}
        )
    if resolution not in (Resolution.IGNORED, Resolution.FIXED_MANUALLY):
        raise NoteRequired(
            f"Resolution must be one of ignored, fixed_manually, got {resolution!r}.",
            details={"resolution": ["Must be ignored or fixed_manually."]},
            code="invalid_resolution",
        )
    with transaction.atomic():
        letter = _lock_unresolved(dead_letter_id)
        _resolve(letter, resolution, actor, note.strip())
        record_event(
            letter.execution_id,
            kind="dead_letter_resolved",
            actor=actor,
            data={"dead_letter_id": letter.pk, "resolution": resolution, "note": note.strip()},
        )
    return letter


def _lock_unresolved(dead_letter_id) -> DeadLetter:
    get_dead_letter(dead_letter_id)
    letter = (
        DeadLetter.objects.select_for_update().select_related("execution").get(pk=dead_letter_id)
    )
    if letter.is_resolved:
        raise AlreadyResolved(
            f"Dead letter {letter.pk} was already resolved ({letter.resolution}).",
            details={"resolution": letter.resolution},
        )
    return letter


def _resolve(letter: DeadLetter, resolution: str, actor: Actor, note: str, **extra) -> None:
    letter.resolved_at = timezone.now()
    # the AUTH_USER_MODEL's user; django-stubs type the foreign key as auth.User
    letter.resolved_by = actor.user  # type: ignore[assignment]
    letter.resolution = resolution
    letter.note = note
    for name, value in extra.items():
        setattr(letter, name, value)
    letter.save(update_fields=["resolved_at", "resolved_by", "resolution", "note", *extra])


def unresolved_dead_letter_exists():
    """A condition over Execution: it has an unresolved dead letter (kept by spine_cleanup)."""
    from django.db.models import Exists, OuterRef

    return Exists(DeadLetter.objects.filter(execution=OuterRef("pk"), resolved_at__isnull=True))
