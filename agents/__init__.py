"""Ready-made executor and planner agents."""
