"""The web user of Prometheus and Alertmanager: its name, password and bcrypt hash."""

from __future__ import annotations

WEB_USER = "minicluster"
