"""Starting a request's shadow label once its response was sent."""

from __future__ import annotations

from starlette.background import BackgroundTask

from router.learning.shadow import ShadowJob
from router.pipeline.context import ChatOutcome
from router.services import Services


def shadow_task(services: Services, outcome: ChatOutcome) -> BackgroundTask | None:
    """The response's background task that starts ``outcome``'s shadow job, if any.

    Starlette runs it after the response's last byte was sent, so a shadow call never delays
    or changes the answer the client gets.
    """
    if outcome.shadow is None or services.learning is None:
        return None
    return BackgroundTask(_submit_shadow, services, outcome.shadow, outcome)


async def _submit_shadow(services: Services, job: ShadowJob, outcome: ChatOutcome) -> None:
    """Hand the sent response's shadow job to the runner, with how the request ended."""
    done = outcome.finished()
    if done is None or services.learning is None:  # not recorded: the response did not end
        return
    await services.learning.shadow.submit(
        job,
        ok=done.status == 200 and done.error_code is None and not done.fell_back,
        completion=done.completion,
        completion_tokens=done.usage.completion_tokens if done.usage else 0,
        policy_hash=done.policy_hash,
    )
