"""The procedures' workflows run by mail (§4, §6, §7, §8): escalation timers, agents' replies
and commands, refunds, surveys, incidents and the breach notifier; ``desk.Desk`` wires them."""
