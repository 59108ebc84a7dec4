"""The read-only web dashboard: the live SLA board, KPIs, tickets, customers, outbox, quarantine."""
