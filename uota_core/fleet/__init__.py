"""Fleets: find every board (`uota list`) and push to all of them at once (`--all`)."""
