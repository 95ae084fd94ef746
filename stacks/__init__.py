"""The CDK app's stacks (deployment units) and constructs (one per capability, plus the shared platform)."""
