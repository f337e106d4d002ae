"""SLA engine: business calendars, contract policies, clocks, sweep and reports."""
