"""Chat groups: a customer's Slack channel or Feishu group, bound to one organization, as a door to tickets."""
