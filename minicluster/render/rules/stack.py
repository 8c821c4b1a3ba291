"""Stack rules: the monitoring services themselves."""

from __future__ import annotations

from minicluster.core.config import Config
from minicluster.core.metrics import NODE_JOB, TRAINER_JOB
from minicluster.render.rules.common import alert, minutes_text


def alerts(config: Config) -> list[dict]:
    a = config.alerts
    return [
        alert(
            config,
            "Watchdog",
            "vector(1)",
            for_minutes=0,
            severity="none",
            summary="Always firing: proves that alerts reach Alertmanager and the webhook.",
            description=(
                "This alert fires all the time (value {{ $value }}). If the webhook stops "
                "receiving it, Prometheus, Alertmanager or the path between them is broken."
            ),
        ),
        alert(
            config,
            "PrometheusTargetDown",
            # node and trainer targets have their own alerts with more to say.
            f'up{{job!~"{NODE_JOB}|{TRAINER_JOB}"}} == 0',
            for_minutes=a.target_down_for_minutes,
            severity="warning",
            summary="A monitoring service is not answering Prometheus.",
            description=(
                "{{ $labels.job }} at {{ $labels.instance }} on {{ $labels.node }} has not "
                f"answered Prometheus for {minutes_text(a.target_down_for_minutes)}."
            ),
        ),
    ]
