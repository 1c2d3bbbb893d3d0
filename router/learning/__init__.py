"""The learning loop: shadow labels, judging, guarded promotion and shared, versioned heads."""
