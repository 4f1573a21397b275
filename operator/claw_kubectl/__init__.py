"""`kubectl claw`: read and steer ClawInstances and ClawPlans from kubectl."""
