"""Operations: failure notifications, dead-lettered events, alarms and the dashboard of the pipeline."""
