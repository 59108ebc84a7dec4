"""Reports (issue 16): KPI definitions, report periods, charts and the scheduled report mails."""
