"""Lab tooling: experiments on the routing data (not imported by the gateway)."""
