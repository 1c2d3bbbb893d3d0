"""PII and prompt-injection checks (stage 2 of the request path); see ``docs/privacy.md``.

The pipeline calls :func:`router.guard.stage.guard_request`; the policy section is
:class:`router.policy.sections.guard.GuardSettings`.
"""
