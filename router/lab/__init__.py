"""Lab tooling, never imported by the gateway (only by the CLI and by hand): evaluation of
routers on labelled data, ceilings, candidate signals, the classifier benchmark and the
generation of the semantic cache's evaluation pairs."""
