"""tiered: planner/executor multi-agent framework."""
