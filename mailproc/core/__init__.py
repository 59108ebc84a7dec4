"""Pure core: parsing, detection, threading, classification and SLA decisions; no I/O."""
