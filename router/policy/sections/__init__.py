"""Each stage's section of the policy (``classifier:``, ``budgets:``, ``guard:``, ...), so that
the policy schema depends on no stage package; the stages import their section from here."""
