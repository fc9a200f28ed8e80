"""Run directories: storing metrics and checks, and comparing runs across kernel builds."""
