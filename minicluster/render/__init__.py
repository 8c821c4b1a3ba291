"""Renderers: everything deploy and demo install, built from a Config."""
